"""Transfer probes on frozen features (seeds 001/002 App. A; seed 003 App. F).

* **Linear probe**: multinomial logistic regression, L-BFGS (scikit-learn). C is tuned on the
  validation split by Optuna's seeded TPE sampler over ``trials`` trials (≥ 25 in the papers),
  log-uniform in [c_min, c_max]; without Optuna (or with ``search="grid"``) ``trials``
  log-spaced values are tried. The best C is refit on train + val and scored on test.
* **Weighted k-NN** (DINO's protocol; seed 003 does not state its k): ℓ2-normalised features,
  cosine similarity to the train + val bank, the k nearest vote with weight exp(cos / T)
  (k = 20, T = 0.07).

Accuracies are in percent.
"""
from __future__ import annotations

import warnings

import numpy as np


def _fit_score(c, xtr, ytr, xev, yev, max_iter):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter)
        clf.fit(xtr, ytr)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return float(100.0 * np.mean(clf.predict(xev) == yev)), converged


def _search_backend(search: str) -> str:
    if search != "auto":
        if search == "optuna":
            try:
                import optuna  # noqa: F401
            except ImportError:
                from engine.errors import UserError

                raise UserError("--transfer.search optuna: optuna is not installed "
                                "(pip install optuna), or use --transfer.search grid") from None
        return search
    try:
        import optuna  # noqa: F401
    except ImportError:
        return "grid"
    return "optuna"


def tune_c(xtr, ytr, xval, yval, *, trials=25, c_min=1e-6, c_max=1e5, max_iter=1000,
           search="auto", seed=0, progress=False, desc="C search") -> dict:
    """Best C on the validation split: ``{"C", "val_top1", "trials", "search", "history"}``."""
    import sys

    from tqdm import tqdm

    backend = _search_backend(search)
    history = []
    bar = tqdm(total=trials, desc=desc, unit="fit", disable=not progress, file=sys.stderr,
               leave=False)

    def score(c):
        acc, _ = _fit_score(c, xtr, ytr, xval, yval, max_iter)
        history.append([float(c), acc])
        bar.update(1)
        return acc

    if backend == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(lambda t: score(t.suggest_float("C", c_min, c_max, log=True)),
                       n_trials=trials)
    else:
        for c in np.logspace(np.log10(c_min), np.log10(c_max), trials):
            score(float(c))
    bar.close()
    best_c, best_acc = max(history, key=lambda h: (h[1], -abs(np.log10(h[0]))))
    return {"C": best_c, "val_top1": best_acc, "trials": len(history),
            "search": "optuna-tpe" if backend == "optuna" else "grid", "history": history}


def linear_probe(train, val, test, *, trials=25, c_min=1e-6, c_max=1e5, max_iter=1000,
                 search="auto", seed=0, progress=False, desc="C search") -> dict:
    """Tune C on (train, val), refit on train + val, score on test. Each argument is a pair
    ``(features (N, D), labels (N,))``."""
    tuned = tune_c(*train, *val, trials=trials, c_min=c_min, c_max=c_max, max_iter=max_iter,
                   search=search, seed=seed, progress=progress, desc=desc)
    xtv = np.concatenate([train[0], val[0]])
    ytv = np.concatenate([train[1], val[1]])
    top1, converged = _fit_score(tuned["C"], xtv, ytv, *test, max_iter)
    return {"top1": top1, "C": tuned["C"], "val_top1": tuned["val_top1"],
            "trials": tuned["trials"], "search": tuned["search"], "converged": converged,
            "solver": "lbfgs", "c_range": [c_min, c_max]}


def knn_predict(bank_x, bank_y, query_x, *, k: int = 20, temperature: float = 0.07,
                num_classes: int | None = None, chunk: int = 1024) -> np.ndarray:
    """DINO's weighted k-NN: predicted labels of ``query_x``."""
    import torch
    import torch.nn.functional as F

    bank = F.normalize(torch.as_tensor(np.asarray(bank_x), dtype=torch.float32), dim=1)  # (M, D)
    labels = torch.as_tensor(np.asarray(bank_y), dtype=torch.int64)                      # (M,)
    c = int(num_classes or labels.max().item() + 1)
    k = min(k, len(bank))
    preds = []
    for start in range(0, len(query_x), chunk):
        q = F.normalize(torch.as_tensor(np.asarray(query_x[start:start + chunk]),
                                        dtype=torch.float32), dim=1)                     # (B, D)
        sim, idx = (q @ bank.T).topk(k, dim=1)                                           # (B, k)
        weights = (sim / temperature).exp()
        votes = torch.zeros(len(q), c).scatter_add_(1, labels[idx], weights)             # (B, C)
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


def knn_accuracy(bank, query, *, k: int = 20, temperature: float = 0.07) -> dict:
    """Top-1 of the weighted k-NN; ``bank`` and ``query`` are ``(features, labels)`` pairs."""
    num_classes = int(max(np.max(bank[1]), np.max(query[1])) + 1)
    pred = knn_predict(bank[0], bank[1], query[0], k=k, temperature=temperature,
                       num_classes=num_classes)
    return {"top1": float(100.0 * np.mean(pred == np.asarray(query[1]))), "k": k,
            "temperature": temperature, "metric": "cosine"}
