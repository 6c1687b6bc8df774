"""Fitting the ensemble network on transitions: ``fit_ensemble(model, data, config)``.

The trainer sees the network (:class:`~wm_agents.neural.network.EnsembleNetwork`: weights,
normalizers, heads) and a :class:`~wm_agents.neural.buffer.TransitionBatch`, never the world
model around them, so the model's ``learn`` can call it without an import circle.

Gaussian negative log-likelihood on normalized ``(delta obs, reward)`` targets plus a binary
cross-entropy for termination; each member trains on its own bootstrap resample; a held-out
split of contiguous stretches drives early stopping (best weights kept per member) and gives
honest one-step and multi-step validation errors.  The dynamics net and the termination
classifier keep separate best weights and early-stopping criteria.  :func:`fit_value` then fits
the terminal value ``V(s)`` on TD(lambda) returns of the real episodes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from wm_agents.neural.bounds import seen_range
from wm_agents.neural.buffer import TransitionBatch
from wm_agents.neural.network import EnsembleLinear, EnsembleNetwork

__all__ = [
    "MIN_TRANSITIONS",
    "FitConfig",
    "FitReport",
    "fit_end_reward",
    "fit_ensemble",
    "fit_value",
    "lambda_returns",
    "multistep_mse",
]


MIN_TRANSITIONS = 10
"""Fewest transitions :func:`fit_ensemble` accepts."""


@dataclass(frozen=True)
class FitConfig:
    """Training options.

    Attributes:
        holdout: fraction of data held out for validation (taken as contiguous chunks).
        chunk: length of the contiguous chunks the split is made of.
        batch_size: minibatch size per member.
        max_epochs: upper bound on passes over the training split.
        patience: epochs without a 1% validation improvement of any member before stopping.
        lr, weight_decay: Adam options.
        bootstrap: train each member on its own resample (drives member disagreement).
        multistep: horizon k of the multi-step validation error.
        seed: seeds the split, bootstrap and minibatch order.
        value: also fit the terminal value ``V(s)`` (see :func:`fit_value`).
        value_gamma: discount of the value targets (use the planner's ``gamma``).
        value_lambda: lambda of the TD(lambda) targets (1 = Monte-Carlo return-to-go).
        value_rounds: rounds of (recompute bootstrapped targets, regress).
        value_epochs: regression epochs per round.
        term_weight_cap: most weight an episode end gets in the termination loss, against 1
            for a step that goes on (the weight is the data's ratio of the two, up to this cap).
        end_steps: minibatch steps of each end-reward fit (models with ``end_reward`` on:
            :func:`fit_end_reward`).
        value_recent: fit the terminal value on the newest this many real transitions only
            (``None``: all of them).  The value is the return of the policies that collected
            its data: on all of it, early slow episodes included, it is the return of that
            mixture, not of the planner now (Acrobot, BENCHMARKS.md).
    """

    holdout: float = 0.2
    chunk: int = 20
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-5
    bootstrap: bool = True
    multistep: int = 10
    seed: int = 0
    value: bool = True
    value_gamma: float = 0.99
    value_lambda: float = 0.95
    value_rounds: int = 3
    value_epochs: int = 100
    term_weight_cap: float = 20.0
    end_steps: int = 200
    value_recent: int | None = None

    def __post_init__(self) -> None:
        if self.value_recent is not None and self.value_recent < 1:
            raise ValueError(f"value_recent must be >= 1 or None, got {self.value_recent}")


@dataclass
class FitReport:
    """What a fit did and how good the model is on held-out data (raw units)."""

    n_train: int
    n_val: int
    epochs: int
    val_mse: float
    val_reward_mse: float
    val_term_accuracy: float
    val_multistep_mse: float
    multistep: int
    seconds: float
    train_loss: list[float] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {
            "n_train": float(self.n_train),
            "n_val": float(self.n_val),
            "epochs": float(self.epochs),
            "val_mse": self.val_mse,
            "val_reward_mse": self.val_reward_mse,
            "val_term_accuracy": self.val_term_accuracy,
            f"val_mse_{self.multistep}step": self.val_multistep_mse,
            "fit_seconds": self.seconds,
        }

    def summary(self) -> str:
        return (
            f"fit {self.n_train}+{self.n_val} transitions in {self.epochs} epochs "
            f"({self.seconds:.1f}s): one-step val MSE {self.val_mse:.3g}, "
            f"{self.multistep}-step {self.val_multistep_mse:.3g}"
        )


def _split(n: int, cfg: FitConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole contiguous chunks so multi-step validation sees unseen stretches."""
    if n < MIN_TRANSITIONS:
        raise ValueError(
            f"need at least {MIN_TRANSITIONS} transitions to fit a dynamics model, got {n}"
        )
    chunk = max(1, min(cfg.chunk, n // 10))
    starts = np.arange(0, n, chunk)
    n_val_chunks = max(1, round(len(starts) * cfg.holdout)) if cfg.holdout > 0 else 0
    val_chunks = rng.choice(len(starts), size=n_val_chunks, replace=False)
    is_val = np.zeros(n, bool)
    for c in val_chunks:
        is_val[starts[c] : starts[c] + chunk] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _tensors(model: EnsembleNetwork, data: TransitionBatch, idx: np.ndarray):
    obs = torch.from_numpy(data.obs[idx])
    act = torch.from_numpy(data.action[idx])
    x = torch.cat([obs, model.action_spec.encode(act)], dim=-1)
    target = torch.cat(
        [torch.from_numpy(data.next_obs[idx]) - obs, torch.from_numpy(data.reward[idx])[:, None]],
        dim=-1,
    )
    term = torch.from_numpy(data.terminated[idx].astype(np.float32))
    return x, target, term, torch.from_numpy(data.next_obs[idx])


def _set_normalizers(model: EnsembleNetwork, x: torch.Tensor, target: torch.Tensor) -> None:
    def stats(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = t.mean(0), t.std(0, correction=0)
        # Constant columns (e.g. a reward that is always 1) keep unit scale instead of 1/0.
        return mean, torch.where(std < 1e-6, torch.ones_like(std), std)

    with torch.no_grad():
        m, s = stats(x)
        model.in_mean.copy_(m)
        model.in_std.copy_(s)
        m, s = stats(target)
        model.out_mean.copy_(m)
        model.out_std.copy_(s)


def _own_fit_params(model: EnsembleNetwork) -> set[int]:
    """Ids of the parameters fitted by their own loops after the dynamics fit (the terminal
    value, the end reward), not by :func:`fit_ensemble`'s optimizer."""
    nets = [model.value_layers] + ([model.end_layers] if model.end_layers is not None else [])
    return {id(p) for net in nets for p in net.parameters()}


def _member_params(model: EnsembleNetwork) -> list[nn.Parameter]:
    value = _own_fit_params(model)
    return [
        p
        for mod in model.modules()
        if isinstance(mod, EnsembleLinear)
        for p in mod.parameters()
        if id(p) not in value
    ]


def fit_ensemble(
    model: EnsembleNetwork,
    data: TransitionBatch,
    config: FitConfig | None = None,
    *,
    progress: bool = False,
) -> FitReport:
    """Fit ``model`` on ``data`` (continuing from its current weights) and report validation error.

    Early stopping keeps, for every member separately, the weights of its best validation epoch.
    """
    cfg = config or FitConfig()
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed + len(data))
    gen = torch.Generator().manual_seed(cfg.seed + 7919 * len(data))
    train_idx, val_idx = _split(len(data), cfg, rng)
    if len(val_idx) == 0:
        # holdout=0: nothing is held out, so early stopping and the reported errors use the
        # training data (optimistic, but training still runs to convergence).
        val_idx = train_idx
    x, y, term, nxt = _tensors(model, data, train_idx)
    _set_normalizers(model, x, y)
    with torch.no_grad():
        model.reward_seen.copy_(seen_range(data.reward))  # imagined rewards are clipped to it
        # Where the real data has been (rollouts may halt outside it: EnsembleNetwork.state_box)
        states = torch.from_numpy(np.concatenate([data.obs, data.next_obs]))
        model.state_seen.copy_(torch.stack([states.amin(0), states.amax(0)]))
    xn = (x - model.in_mean) / model.in_std
    yn = (y - model.out_mean) / model.out_std
    xv, yv, termv, nxtv = _tensors(model, data, val_idx)
    xvn = ((xv - model.in_mean) / model.in_std).expand(model.ensemble_size, -1, -1)
    yvn = (yv - model.out_mean) / model.out_std

    e, n = model.ensemble_size, xn.shape[0]
    if cfg.bootstrap:
        members_idx = torch.randint(0, n, (e, n), generator=gen)
    else:
        members_idx = torch.arange(n).expand(e, n)
    # Episode ends are rare (a few per hundred steps): weight them up so the classifier does not
    # settle for "never terminates", which would make every plan look equally safe.
    n_pos = float(term.sum())
    pos_weight = torch.tensor(
        min(cfg.term_weight_cap, (len(term) - n_pos) / n_pos) if n_pos else 1.0
    )
    going_on = None
    if model.end_layers is not None:
        with torch.no_grad():  # the end probability undoes the weight (end_probability)
            model.term_log_weight.fill_(math.log(float(pos_weight)))
        # The reward head learns the reward of a step that goes on; the end-reward head that
        # of one that ends (fit_end_reward): [N, D + 1] loss weights, 0 on ends' rewards.
        going_on = torch.ones(len(term), y.shape[1])
        going_on[:, -1] = 1.0 - term
    member_params = _member_params(model)
    value_ids = _own_fit_params(model)
    opt = torch.optim.Adam(
        [p for p in model.parameters() if id(p) not in value_ids],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    best = [p.detach().clone() for p in member_params]
    best_val = torch.full((e,), math.inf)
    best_term = torch.full((e,), math.inf)
    term_ids = {id(p) for p in model.term_layers.parameters()}
    groups = [1 if id(p) in term_ids else 0 for p in member_params]
    stale, epochs, losses = 0, 0, []

    from tqdm.auto import tqdm

    bar = tqdm(range(cfg.max_epochs), desc="fit", leave=False, disable=not progress)
    for _ in bar:
        model.train()
        perm = torch.argsort(torch.rand(e, n, generator=gen), dim=1)
        order = torch.gather(members_idx, 1, perm)
        epoch_loss = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[:, start : start + cfg.batch_size]  # [E, b]
            mean, logvar = model.forward_normalized(xn[idx])
            target = yn[idx]
            nll = ((mean - target) ** 2) * torch.exp(-logvar) + logvar
            if going_on is not None:  # the reward column only where the step went on
                nll = nll * going_on[idx]
            nll = nll.mean()
            logit = model.termination_logit(nxt[idx])
            bce = nn.functional.binary_cross_entropy_with_logits(
                logit, term[idx], pos_weight=pos_weight
            )
            bound = 0.01 * (model.max_logvar.sum() - model.min_logvar.sum())
            loss = nll + bce + bound
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            epoch_loss += float(loss.detach()) * idx.shape[1]
        epochs += 1
        losses.append(epoch_loss / n)

        model.eval()
        with torch.no_grad():
            mean, _ = model.forward_normalized(xvn)
            val_dyn = ((mean - yvn) ** 2).mean(dim=(1, 2))  # [E]
            tlogit = model.termination_logit(nxtv.expand(model.ensemble_size, -1, -1))
            val_term = nn.functional.binary_cross_entropy_with_logits(
                tlogit, termv.expand_as(tlogit), reduction="none"
            ).mean(dim=1)
        # The dynamics net and the termination classifier are separate networks on very
        # different loss scales: each keeps its own best weights and its own 1% criterion, so
        # a slowly improving dynamics MSE is not hidden behind the classifier's larger BCE.
        any_improved = False
        for group, best_v, val in ((0, best_val, val_dyn), (1, best_term, val_term)):
            improved = (best_v - val) / best_v.clamp(min=1e-12) > 0.01
            improved |= torch.isinf(best_v)
            if improved.any():
                any_improved = True
                for p, b, g in zip(member_params, best, groups, strict=True):
                    if g == group:
                        b[improved] = p.detach()[improved]
                best_v.copy_(torch.where(improved, val, best_v))
        if any_improved:
            stale = 0
        else:
            stale += 1
        bar.set_postfix(loss=f"{losses[-1]:.3f}", val=f"{float(best_val.mean()):.4f}")
        if stale >= cfg.patience:
            break
    with torch.no_grad():
        for p, b in zip(member_params, best, strict=True):
            p.copy_(b)
        model.fitted.fill_(True)
    model.eval()

    if model.end_layers is not None:
        fit_end_reward(model, data, cfg)
    if cfg.value:
        fit_value(model, data, cfg)
    one_step, reward_mse, term_acc = _one_step_errors(model, data, val_idx)
    k = cfg.multistep
    multi = multistep_mse(model, data, val_idx, k)
    report = FitReport(
        n_train=len(train_idx),
        n_val=len(val_idx),
        epochs=epochs,
        val_mse=one_step,
        val_reward_mse=reward_mse,
        val_term_accuracy=term_acc,
        val_multistep_mse=multi,
        multistep=k,
        seconds=time.perf_counter() - t0,
        train_loss=losses,
    )
    model.last_fit = report
    return report


@torch.no_grad()
def _one_step_errors(
    model: EnsembleNetwork, data: TransitionBatch, idx: np.ndarray
) -> tuple[float, float, float]:
    """Ensemble-mean one-step errors on ``idx``: next-obs MSE, reward MSE, termination accuracy."""
    if len(idx) == 0:
        return math.nan, math.nan, math.nan
    e = model.ensemble_size
    obs = torch.from_numpy(data.obs[idx]).expand(e, -1, -1)
    act = torch.from_numpy(data.action[idx]).expand(e, -1, -1)
    nxt, rew, term = model.predict(obs, act, clip=False)  # the model's own error
    mse = float(((nxt.mean(0) - torch.from_numpy(data.next_obs[idx])) ** 2).mean())
    rmse = float(((rew.mean(0) - torch.from_numpy(data.reward[idx])) ** 2).mean())
    acc = float(((term.mean(0) > 0.5).numpy() == data.terminated[idx]).mean())
    return mse, rmse, acc


@torch.no_grad()
def multistep_mse(model: EnsembleNetwork, data: TransitionBatch, idx: np.ndarray, k: int) -> float:
    """MSE of the k-th predicted observation, rolling the ensemble mean through real actions.

    Starts are the indices in ``idx`` whose next ``k`` transitions are all in ``idx`` and in one
    episode, so the error is measured on held-out stretches only.  NaN when there are none.
    """
    if k < 1 or len(idx) == 0:
        return math.nan
    in_set = np.zeros(len(data) + k, bool)
    in_set[idx] = True
    ends = data.episode_end
    starts = [
        i
        for i in idx
        if i + k <= len(data) and in_set[i : i + k].all() and not ends[i : i + k - 1].any()
    ]
    if not starts:
        return math.nan
    s = np.asarray(starts)
    e = model.ensemble_size
    state = torch.from_numpy(data.obs[s]).expand(e, -1, -1)
    for j in range(k):
        act = torch.from_numpy(data.action[s + j]).expand(e, -1, -1)
        nxt, _, _ = model.predict(state, act, clip=False)
        state = nxt.mean(0, keepdim=True).expand(e, -1, -1)
    return float(((state[0] - torch.from_numpy(data.next_obs[s + k - 1])) ** 2).mean())


def lambda_returns(
    reward: np.ndarray,
    terminated: np.ndarray,
    episode_end: np.ndarray,
    next_value: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """TD(lambda) targets for every transition of a time-ordered buffer.

    ``G_i = r_i + gamma * (1 - term_i) * ((1 - lam) * V(s'_i) + lam * G_{i+1})``, bootstrapping
    fully from ``V(s'_i)`` at the end of a stretch that was cut (time limit, end of data).
    """
    n = len(reward)
    out = np.zeros(n, np.float64)
    nxt = 0.0
    for i in range(n - 1, -1, -1):
        if episode_end[i]:
            boot = next_value[i]
        else:
            boot = (1.0 - lam) * next_value[i] + lam * nxt
        nxt = reward[i] + gamma * (0.0 if terminated[i] else 1.0) * boot
        out[i] = nxt
    return out.astype(np.float32)


def fit_end_reward(model: EnsembleNetwork, data: TransitionBatch, config: FitConfig) -> None:
    """Fit the end-reward head (:meth:`EnsembleNetwork.end_reward_of`) on the real episode ends.

    The targets are the rewards of the terminating steps (time limits are not ends), from the
    states they landed in, normalized by their own mean and std, so a goal's +100 among rewards
    of about 0 is a target near 0, not an outlier.  Each member regresses on its own bootstrap
    resample of the ends for ``end_steps`` minibatch steps, continuing from its weights.  With
    no end in the data every end's reward is the mean reward (the head's output is set to 0).
    """
    cfg = config
    layers = model._end_layers()  # a ValueError for a model without the head
    ends = np.flatnonzero(data.terminated)
    with torch.no_grad():
        if len(ends) == 0:
            model.end_mean.fill_(float(np.mean(data.reward)) if len(data) else 0.0)
            model.end_std.fill_(1.0)
            layers[-1].weight.zero_()
            layers[-1].bias.zero_()
            return
        rewards = torch.from_numpy(data.reward[ends].astype(np.float32))
        std = float(rewards.std(correction=0))
        model.end_mean.fill_(float(rewards.mean()))
        model.end_std.fill_(std if std > 1e-6 else 1.0)
    target = (rewards - model.end_mean) / model.end_std
    nxt = torch.from_numpy(data.next_obs[ends])
    e, n = model.ensemble_size, len(ends)
    gen = torch.Generator().manual_seed(cfg.seed + 15485863 + len(data))
    pool = torch.randint(0, n, (e, n), generator=gen) if cfg.bootstrap else None
    opt = torch.optim.Adam(layers.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    b = min(cfg.batch_size, n)
    model.train()
    for _ in range(cfg.end_steps):
        pick = torch.randint(0, n, (e, b), generator=gen)
        idx = pick if pool is None else torch.gather(pool, 1, pick)
        pred = model.end_reward_normalized(nxt[idx])
        loss = ((pred - target[idx]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()


def _newest(data: TransitionBatch, n: int) -> TransitionBatch:
    """The newest ``n`` transitions of a time-ordered batch (a stretch cut at its start is
    still a valid suffix of its episode: TD(lambda) targets run backwards from its end)."""
    return TransitionBatch(
        **{f.name: getattr(data, f.name)[-n:] for f in dataclasses.fields(TransitionBatch)}
    )


def fit_value(model: EnsembleNetwork, data: TransitionBatch, config: FitConfig) -> None:
    """Fit the model's terminal value ``V(s)`` on real experience (fitted TD(lambda)).

    Targets are the discounted lambda-returns of the real episodes in the buffer, bootstrapped
    with the current ``V`` where an episode was cut; each of ``value_rounds`` rounds recomputes
    the targets with the value from the round before and regresses every member on its own
    bootstrap resample.  The result is the long-run return of the policies that collected the
    data, used by the planner beyond its horizon (POLO / MBVE style): it is learned, not given.
    With ``value_recent`` only the newest transitions are used: the recent policies' return.
    """
    cfg = config
    e = model.ensemble_size
    gen = torch.Generator().manual_seed(cfg.seed + 104729 + len(data))
    if cfg.value_recent is not None and len(data) > cfg.value_recent:
        data = _newest(data, cfg.value_recent)
    obs = torch.from_numpy(data.obs)
    nxt = torch.from_numpy(data.next_obs)
    n = len(data)
    params = list(model.value_layers.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    idx_all = torch.randint(0, n, (e, n), generator=gen) if cfg.bootstrap else None
    obs_e = obs.expand(e, -1, -1)
    for _ in range(max(1, cfg.value_rounds)):
        with torch.no_grad():
            if bool(model.value_fitted):
                v_next = model.value(nxt.expand(e, -1, -1), clip=False).mean(0).numpy()
            else:
                v_next = np.zeros(n, np.float32)
        target = torch.from_numpy(
            lambda_returns(
                data.reward,
                data.terminated,
                data.episode_end,
                v_next,
                cfg.value_gamma,
                cfg.value_lambda,
            )
        )
        with torch.no_grad():
            model.v_mean.fill_(float(target.mean()))
            model.v_std.fill_(max(float(target.std()), 1e-6))
            model.value_seen.copy_(seen_range(target))  # terminal values are clipped to it
        tn = (target - model.v_mean) / model.v_std
        model.train()
        for _ in range(cfg.value_epochs):
            perm = torch.argsort(torch.rand(e, n, generator=gen), dim=1)
            order = torch.gather(idx_all, 1, perm) if idx_all is not None else perm
            for start in range(0, n, cfg.batch_size):
                idx = order[:, start : start + cfg.batch_size]
                members = torch.arange(e)[:, None]
                pred = model.value_normalized(obs_e[members, idx])
                loss = ((pred - tn[idx]) ** 2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            model.value_fitted.fill_(True)
            fit_err = ((model.value_normalized(obs_e) - tn) ** 2).mean()
    # Fraction of target variance the value explains on the data it saw (1 = all).
    model.value_r2 = float(1.0 - fit_err)
