"""Fine-tuning on Ray Train: embedded Ray here, any Ray cluster at scale.

`plan_training` validates everything (config, dataset, base model) before any
compute; `run_training` runs it with `ray.train.torch.TorchTrainer`, exports
the model and publishes it to the registry as a candidate.
"""
