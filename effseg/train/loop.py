"""`effseg train`: the training loop (single process or one per device under torchrun).

Reproducibility: the model's initial weights, the sample order (DistributedSampler,
seeded per epoch) and the augmentation (Augment, seeded per sample and epoch) depend
only on --seed and the epoch, and a checkpoint carries the optimizer, the AMP scaler, the
loss schedule and the RNG states, so a resumed run ends with the same weights as one that
was never interrupted.
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, default_collate

from .._version import __version__
from ..data import Augment, SegFolder
from ..models.spec import build_model
from . import ddp
from .checkpoint import net_state, read_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .curves import plot_curves
from .evaluate import score_model
from .objective import Teacher, aux_loss, build_kd, build_loss, split_outputs
from .records import write_records


def _collate(batch):
    try:
        return default_collate(batch)
    except RuntimeError as exc:
        sizes = sorted({tuple(x.shape[-2:]) for x, _ in batch})
        raise ValueError(f"training images differ in size ({', '.join(f'{h}x{w}' for h, w in sizes)}): pass "
                         f"--crop N to train on N x N crops ({exc})") from None


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _tile_size(crop, dataset: SegFolder) -> int:
    """The side a bundle is exported at and evaluation tiles with: the training crop, else
    the first training image's larger side, rounded up to a multiple of 32 (zoo nets' stride)."""
    if crop:
        return int(crop)
    h, w = dataset.raw(0)["image"].shape[:2]
    return max(32, -(-max(h, w) // 32) * 32)


def _lr_factor(cfg: TrainConfig, step: int, total_steps: int | None, elapsed: float) -> float:
    """Cosine decay from 1 to 0 over the run: over the steps of --epochs, else over --max-time."""
    if cfg.epochs is not None and total_steps:
        progress = step / total_steps
    else:
        progress = elapsed / cfg.max_time
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _bar(loader, show: bool, epoch: int):
    if not show:
        return loader
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return loader
    return tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, unit="batch")


def train(cfg: TrainConfig) -> dict:
    """Run the training cfg describes; returns the summary (also RUN/metrics.json)."""
    cfg.check()
    dist = ddp.setup(cfg.device)
    try:
        return _train(cfg, dist)
    finally:
        dist.close()


def _train(cfg: TrainConfig, dist: ddp.Dist) -> dict:
    run = Path(cfg.out)
    device = dist.device
    if cfg.batch % dist.world:
        raise ValueError(f"--batch {cfg.batch} is the global batch and must be divisible by the {dist.world} "
                         "processes")
    resume = read_checkpoint(cfg.resume) if cfg.resume else None
    rmeta = resume["effseg"] if resume else None
    if rmeta is not None and rmeta["architecture"] != cfg.model:
        raise ValueError(f"--resume {cfg.resume!r} holds a {rmeta['architecture']!r} model, --model is {cfg.model!r}")
    _seed_all(cfg.seed)
    aug = Augment(crop=cfg.crop, seed=cfg.seed)
    train_ds = SegFolder(cfg.data, "train", cfg.format, transform=aug, num_classes=cfg.num_classes,
                         stats=rmeta["normalize"] if rmeta else None)
    K = train_ds.num_classes
    stats = {"mean": list(train_ds.stats["mean"]), "std": list(train_ds.stats["std"])}
    bands = len(stats["mean"])
    val_ds = SegFolder(cfg.data, cfg.val_split, cfg.format, stats=stats, num_classes=K)
    if rmeta is not None and (int(rmeta["num_classes"]), int(rmeta["in_channels"])) != (K, bands):
        raise ValueError(f"--resume {cfg.resume!r} has {rmeta['num_classes']} classes and {rmeta['in_channels']} "
                         f"bands; the data has {K} and {bands}")
    meta = {
        "architecture": cfg.model, "num_classes": K, "in_channels": bands,
        "classes": [str(c) for c in (train_ds.classes or [f"class_{i}" for i in range(K)])],
        "palette": [list(map(int, c)) for c in train_ds.palette],
        "normalize": stats, "tile_size": _tile_size(cfg.crop, train_ds), "format": train_ds.format.name,
        "pixel_dtype": str(train_ds.raw(0)["image"].dtype), "ignore_index": 255,
        "loss": cfg.loss, "seed": cfg.seed, "effseg_version": __version__,
        "kd": None if cfg.kd is None else {"kind": cfg.kd, "teacher": str(cfg.teacher), "weight": cfg.kd_weight,
                                           "tau": cfg.tau, "band": cfg.kd_band, "edge_weight": cfg.kd_edge_weight,
                                           "body_weight": cfg.kd_body_weight},
    }

    model = build_model(cfg.model, K, bands, seed=cfg.seed)
    if resume is not None:
        model.load_state_dict(net_state(resume))
    model.to(device)
    if cfg.sync_bn and dist.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = model
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_scaler = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    loss_fn, timed = build_loss(cfg.loss)
    loss_fn.to(device)
    teacher = kd_loss = None
    if cfg.teacher is not None:
        teacher = Teacher(cfg.teacher, K, stats, device, compile=cfg.teacher_compile)
        kd_loss = build_kd(cfg.kd, cfg.tau, cfg.kd_band, cfg.kd_edge_weight, cfg.kd_body_weight)

    sampler = DistributedSampler(train_ds, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.batch // dist.world, sampler=sampler, num_workers=cfg.workers,
                        collate_fn=_collate, pin_memory=device.type == "cuda")
    steps_per_epoch = len(loader)
    total_steps = None if cfg.epochs is None else cfg.epochs * steps_per_epoch

    epoch0, step, elapsed, best, history = 0, 0, 0.0, -1.0, []
    if resume is not None:
        r = resume["resume"]
        opt.load_state_dict(r["optimizer"])
        if use_scaler and r.get("scaler"):
            scaler.load_state_dict(r["scaler"])
        epoch0, step, elapsed, best = int(r["epoch"]), int(r["global_step"]), float(r["elapsed"]), float(r["best"])
        history = list(r["history"])
        # One RNG state per process of the interrupted run; a run resumed on fewer or more
        # processes reuses rank 0's.
        set_rng_state(r["rng"][dist.rank] if dist.rank < len(r["rng"]) else r["rng"][0])
    loss_fn.set_epoch(epoch0)

    if dist.main:
        run.mkdir(parents=True, exist_ok=True)
    header = {"config": cfg.to_dict(), "meta": meta, "world_size": dist.world, "device": str(device),
              "steps_per_epoch": steps_per_epoch, "distance_timing": None}
    t_start = time.perf_counter() - elapsed
    epoch = epoch0
    stop = False
    while not stop and (cfg.epochs is None or epoch < cfg.epochs):
        sampler.set_epoch(epoch)
        aug.set_epoch(epoch)
        net.train()
        step_losses, step_times, dist_times = [], [], []
        images, t_epoch = 0, time.perf_counter()
        bar = _bar(loader, cfg.progress and dist.main, epoch)
        for x, y in bar:
            t0 = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            lr = cfg.lr * _lr_factor(cfg, step, total_steps, time.perf_counter() - t_start)
            for g in opt.param_groups:
                g["lr"] = lr
            if timed is not None:
                timed.seconds = 0.0
            with torch.autocast(device.type, dtype=amp_dtype, enabled=cfg.amp):
                logits, aux = split_outputs(net(x))
            loss = loss_fn(logits.float(), y)
            extra = aux_loss(aux, y)
            if extra is not None:
                loss = loss + extra
            if teacher is not None:
                t_logits = teacher(x, logits.shape[-2:])
                loss = loss + cfg.kd_weight * kd_loss(logits.float(), t_logits, y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            step_times.append(time.perf_counter() - t0)
            if timed is not None:
                dist_times.append(timed.seconds)
            step += 1
            images += x.shape[0] * dist.world
            step_losses.append(dist.all_mean(loss.detach().item()))
            if bar is not loader:
                rate = images / max(1e-9, time.perf_counter() - t_epoch)
                bar.set_postfix(loss=f"{step_losses[-1]:.4f}", img_s=f"{rate:.1f}")
            if cfg.max_time is not None and time.perf_counter() - t_start >= cfg.max_time:
                stop = True
                break
        train_s = time.perf_counter() - t_epoch
        loss_fn.step()
        # Validation: each process scores its share of the images, the counts are summed.
        scores = score_model(model, val_ds, meta["tile_size"], device,
                             indices=range(dist.rank, len(val_ds), dist.world)).sync(dist)
        result = scores.result()
        epoch += 1
        record = {"epoch": epoch, "train_loss": float(np.mean(step_losses)) if step_losses else None,
                  "lr": lr if step_losses else None, "steps": len(step_losses),
                  "images_per_s": images / train_s if train_s > 0 else None, "epoch_s": train_s,
                  "step_s": float(np.mean(step_times)) if step_times else None, **result,
                  "step_losses": step_losses}
        if timed is not None and dist_times:
            record["distance_loss_s"] = float(np.mean(dist_times))
            record["distance_share"] = float(np.mean(dist_times)) / record["step_s"]
        history.append(record)
        miou = result["miou"] if result["miou"] is not None else -1.0
        improved = miou > best
        best = max(best, miou)
        header["best_miou"] = best
        rngs = _gather_rng(dist, rng_state()) if dist.enabled else [rng_state()]
        if dist.main:
            resume_state = {"optimizer": opt.state_dict(), "scaler": scaler.state_dict() if use_scaler else {},
                            "rng": rngs, "epoch": epoch, "global_step": step,
                            "elapsed": time.perf_counter() - t_start, "best": best, "history": history}
            extra = {"epoch": epoch, "global_step": step, "best_miou": best}
            save_checkpoint(run / "last.ckpt", model, meta, resume_state, **extra)
            if improved:
                save_checkpoint(run / "best.ckpt", model, meta, resume_state, **extra)
            if timed is not None:
                done = [h for h in history if h.get("distance_loss_s") is not None]
                header["distance_timing"] = {
                    "term": cfg.loss.split("+")[1], "distance_loss_s": float(np.mean([h["distance_loss_s"] for h in done])),
                    "step_s": float(np.mean([h["step_s"] for h in done])),
                    "share": float(np.mean([h["distance_share"] for h in done])),
                    "what": "perf_counter per step (CUDA synchronised) around the distance term's forward "
                            "(its distance maps plus its elementwise terms) vs the whole step "
                            "(forward, loss, backward, optimizer), averaged over steps"}
            write_records(run, header, history)
            note = plot_curves(run, history)
            header["curves"] = note or "curves.png"
            if cfg.progress:
                print(f"epoch {epoch}: loss {record['train_loss']:.4f}  mIoU {_fmt(result['miou'])}  "
                      f"F1 {_fmt(result['f1'])}  OA {_fmt(result['oa'])}  BIoU {_fmt(result['boundary_iou'])}  "
                      f"{record['images_per_s']:.1f} img/s" + (f"  [{note}]" if note else ""), flush=True)
        dist.barrier()
        if cfg.stop_after is not None and epoch - epoch0 >= cfg.stop_after:
            break
    return {**header, "epochs": history, "run": str(run), "rank": dist.rank}


def _gather_rng(dist: ddp.Dist, mine: dict) -> list:
    import torch.distributed as tdist

    out = [None] * dist.world
    tdist.all_gather_object(out, mine)
    return out


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
