"""The per-process body of the SegMetrics.sync test. It lives in tests/helpers (on the
parent's sys.path, which spawned children inherit) so that the children can unpickle it:
test modules are imported under names the children could not resolve."""
import os

import torch


def sync_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    from effseg.metrics import SegMetrics

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        m = SegMetrics(3)
        if rank == 0:  # rank 1 never updates: its matrix is created for the collective
            m.update(torch.tensor([[[0, 1, 2]]]), torch.tensor([[[0, 1, 1]]]))
        m.sync()
        torch.save(m.matrix, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()
