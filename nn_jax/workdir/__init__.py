"""Everything that reads or writes a run's workdir: checkpoints, the lock, status.json, the records
(hparams.json, metrics.jsonl, summary.json, TensorBoard events), learning curves and pictures."""
