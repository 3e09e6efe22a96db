"""The ``result.json`` of one model (kind "scaling", ``results["what"] == "model"``) from its merged chunks."""

from __future__ import annotations

from varbench.results import scaling as fields
from varbench.results import schema
from varbench.scaling import data as datasets
from varbench.scaling import loss


def build(generator, data, job, merged: dict, state: dict, session: dict) -> schema.Result:
    """``merged``: the chunks' arrays in evaluation order (``rundir.load_chunks``)."""
    from varbench.generators.protocol import model_info

    summary = loss.summarize(merged["ce_sum"], merged["hits"], generator.var.cfg.patch_nums)
    content = datasets.content_sha256([s.decode() for s in merged["source_sha256"]])
    params = int(generator.params)
    n_billions = params / 1e9
    info = data.describe()
    data_info = fields.DataInfo(
        path=info["path"], kind=info["kind"], naming=info["naming"], count=info["count"],
        available=info["available"], limit=info["limit"], order=info["order"],
        listing_sha256=info["listing_sha256"], content_sha256=content, classes=info["classes"])
    res = int(generator.resolution)
    results = fields.ScalingResults(
        what="model", model=job.model, params=params, params_billions=n_billions,
        num_images=summary["num_images"], tokens_per_image=summary["tokens_per_image"],
        last_scale_tokens=summary["last_scale_tokens"], l_avg=summary["l_avg"], l_last=summary["l_last"],
        acc_avg=summary["acc_avg"], acc_last=summary["acc_last"], err_avg=summary["err_avg"],
        err_last=summary["err_last"], l_avg_sem=summary["l_avg_sem"], l_last_sem=summary["l_last_sem"],
        per_scale=summary["per_scale"],
        paper_law={m: fields.paper_value(m, n_billions) for m in fields.METRICS}, data=data_info,
        protocol=dict(loss.PROTOCOL), random_weights=bool(generator.random_weights),
        num_chunks=state["num_chunks"], chunks_evaluated=len(state["pending"]), chunks_reused=state["reused"],
        seconds=session["wall_seconds"], images_per_second=session["images_per_second"])
    protocol = schema.empty_protocol()
    protocol.update(
        model=model_info(generator),
        samples=schema.SamplesInfo(count=summary["num_images"], resolution=res, height=res, width=res,
                                   sha256=content, path=info["path"], kind=info["kind"], order=info["order"]),
        arithmetic={k: loss.PROTOCOL["aggregation"] for k in ("l_avg", "l_last", "acc_avg", "acc_last")})
    config = {"model": job.model, "data": info["path"], "limit": data.limit, "batch_size": job.batch_size,
              "chunk_size": job.chunk_size, "device": job.device, "workers": job.workers,
              "world_size": session["world_size"], "weights": {k: str(v) for k, v in job.weights.items()},
              "out": str(job.out), "run_id": state["run_id"]}
    return schema.make("scaling", config, results, protocol, device=job.device,
                       random_weights=bool(generator.random_weights), warnings=warnings(job.model, generator, data))


def warnings(name: str, generator, data) -> list[str]:
    out = []
    if generator.random_weights:
        out.append(f"{name} has random weights: its losses test the pipeline, not a model")
    if len(data) < data.available:
        out.append(f"evaluated the first {len(data):,} of {data.available:,} images ({data.order}); not the full set")
    return out
