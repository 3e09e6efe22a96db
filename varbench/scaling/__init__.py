"""``varbench scaling``: teacher-forced validation loss and token accuracy per model (the VAR trainer's ``eval_ep``),
and power-law fits against model size (the VAR paper's scaling laws).

data.py  validation images + labels (ImageNet-style folder or npz), the evaluation order
loss.py  the teacher-forced statistics of a batch and the protocol
rundir.py  the per-model output directory (manifest, chunks, lock, resume)
run.py   one model over the data: sharded, resumable chunks, merged by rank 0 into a result
fit.py   power laws metric = (c * N)^alpha in log-log space, Pearson r and its Fisher-z interval
"""
