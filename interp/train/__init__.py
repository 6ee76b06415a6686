"""Training: debiasing and KD losses, student construction, a small CPU trainer, and the model zoo.

- ``interp.train.losses``: PoE, example reweighting, confidence regularisation, debiased focal, Hinton KD.
- ``interp.train.students``: students from teacher layers, random / narrower students, compatibility checks.
- ``interp.train.trainer``: ``TrainConfig``, ``train_model``, ``train_and_save`` (atomic, cached),
  ``iterative_kd`` (born-again), ``load_trained``, ``predict_logits``.
- ``interp.train.zoo``: ``build_default_pair()`` -> the MiniLM ERM / debiased teachers and their 3-layer
  students (``python -m interp.train.zoo`` builds them and prints their metrics).

Submodules are imported on demand (``from interp.train.zoo import build_default_pair``) so that importing
``interp.train`` stays cheap.
"""
