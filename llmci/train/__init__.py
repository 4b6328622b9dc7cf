"""Fine-tuning on Ray Train: embedded Ray here, any Ray cluster at scale.

`plan_training` validates everything (config, dataset, base model) before any
compute; `run_training` runs it with `ray.train.torch.TorchTrainer` and exports
the model; `publish_run` publishes it to the registry as a candidate.
"""
