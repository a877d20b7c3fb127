"""popnb's benchmarks: `python -m benchmarks` (or `make bench`) writes benchmarks/results.md and results.json.

One module per question, each with run(Options) -> Section: mfu (model FLOPs utilisation), step_profile (where the
default step's time goes) and tries (what was tried to make it faster), gpipe (pipeline overhead), sweep (frozen
vs finetune fusion sweep), input_pipeline (loader vs training throughput), memory (peak RSS over epochs),
reports_time (`make reports` wall time). Scratch data, caches and runs go to benchmarks/_work/ (git-ignored).
"""
