"""Hooks inside training and serving code: autologging of the frameworks' training
calls (``registry.autolog()``, ``registry.sklearn`` and its siblings), the
``@registry.track`` decorator, and the prediction logger of model servers.

``recording`` holds what every training hook shares: a ``Training`` records one
training call into a run it starts or into the active one, and never raises into the
caller's code (a ledger failure is warned about once, with its reason).
``patching`` turns a framework's methods into recorded ones and back; ``tabular``
makes a fit's training data one table; ``boosting`` holds what the XGBoost and
LightGBM hooks share. ``loops`` holds what the callbacks of the training loops
(``registry.lightning``, ``registry.transformers``) share: metrics appended once
every n steps, datasets as run inputs, checkpoints as model versions. ``serving`` and
``spool`` are the prediction logger of model servers.
"""
