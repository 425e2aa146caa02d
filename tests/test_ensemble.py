

def test_local_cluster_workers_run_single_threaded_kernels():
    """One worker per core already fills the machine: each worker's kernels run on one thread."""
    from dask.distributed import Client

    from twin.ensemble import local_cluster

    def threads() -> int:
        import numba

        return numba.get_num_threads()

    with local_cluster(1) as cluster, Client(cluster, set_as_default=False) as client:
        assert client.submit(threads, pure=False).result() == 1
