"""Rows of block 0 of the first run of every shipped job, computed by the previous release."""
import sys, glob, json
from pathlib import Path
import numpy as np
from anderson_mpi.config import load_job, make_plan
from anderson_mpi.sweep import make_context, compute_block
out = {}
meta = {}
for path in sorted(glob.glob("jobs/*.toml")):
    job, text = load_job(path)
    runs = make_plan(job, Path(path).stem)
    run = runs[0]
    ctx = make_context(run, None)
    res = compute_block(ctx, 0)
    name = Path(path).stem
    for k, v in res.sums.items():
        out[f"{name}/{k}"] = np.asarray(v)
    # the job file itself: the shipped jobs may change later, the rows belong to this text
    meta[name] = {"run": run.label, "block": 0, "samples": len(run.block_samples(0)), "toml": text}
    print(name, run.label, len(res.sums), file=sys.stderr)
np.savez_compressed(sys.argv[1], **out)
Path(sys.argv[1]).with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True))
