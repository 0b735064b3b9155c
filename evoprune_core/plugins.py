"""Plugin registry: discovery, isolation and lookup by name (the hooks are in ``hookspecs``).

Engines, operators, schedules, datasets and trackers all arrive through the same hooks; the
built-ins are one more plugin (``evoprune_core._builtin_plugins``). Third-party packages declare an entry point in
the ``evoprune`` group. A plugin that fails to import, fails pluggy's validation, raises in a
hook or returns something malformed is skipped with one warning and listed as broken; the
rest keeps working. ``EVOPRUNE_PLUGINS`` limits what loads: unset = every installed plugin,
``none`` = built-ins only, ``a,b`` = only those distributions.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from .errors import PluginError
from .hookspecs import KINDS, PROJECT, HookSpecs, hookimpl, hookspec

if TYPE_CHECKING:
    from .config import RunConfig
    from .resolved import ResolvedRun

__all__ = [
    "KINDS",
    "PluginInfo",
    "PluginWarning",
    "Provided",
    "Registry",
    "hookimpl",
    "hookspec",
]


class PluginWarning(UserWarning):
    """A plugin was skipped (import error, failing hook, malformed result)."""


@dataclass(frozen=True)
class Provided:
    """One registered component and where it came from."""

    kind: str
    name: str
    obj: Any
    plugin: str
    distribution: str
    version: str

    @property
    def qualified(self) -> str:
        return f"{self.distribution}:{self.name}"


@dataclass
class PluginInfo:
    """What ``evoprune plugins`` reports for one plugin."""

    name: str
    distribution: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    broken: str | None = None


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, shortened to ``limit`` characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _warn(message: str) -> None:
    """Emit one ``PluginWarning`` that prints as a single line (no source line under it)."""
    warnings.warn_explicit(message, PluginWarning, "<evoprune>", 0)


def _validate_item(kind: str, item: Any) -> str:
    """Return the item's name or raise ``TypeError`` naming what is wrong."""
    from .data import DatasetSpec
    from .engines.base import Engine
    from .operators import NEEDS, Operator
    from .schedules import Schedule
    from .tracking import TrackerBackend

    if kind == "dataset":
        if not isinstance(item, DatasetSpec):
            raise TypeError(f"dataset hook returned {item!r}, not a DatasetSpec")
        return item.name
    base = {
        "engine": Engine,
        "operator": Operator,
        "schedule": Schedule,
        "tracker": TrackerBackend,
    }[kind]
    if not (isinstance(item, type) and issubclass(item, base)):
        raise TypeError(f"{kind} hook returned {item!r}, not a {base.__name__} subclass")
    if not item.name or not re.fullmatch(r"[A-Za-z0-9_.\-]+", item.name):
        raise TypeError(f"{kind} {item.__name__} has no valid name")
    if kind == "operator" and not set(item.needs) <= NEEDS:
        raise TypeError(
            f"operator {item.name!r} needs {set(item.needs) - NEEDS}; allowed: "
            + ", ".join(sorted(NEEDS))
        )
    return item.name


class Registry:
    """Every engine, operator, schedule and dataset the installed plugins provide.

    Build one with ``Registry.load()``; it holds no global state, so tests may build several.
    """

    def __init__(
        self, plugins: list[PluginInfo], items: list[Provided], unmatched: Iterable[str] = ()
    ) -> None:
        self.plugins = plugins
        #: ``EVOPRUNE_PLUGINS`` entries that matched no installed plugin
        self.unmatched = tuple(unmatched)
        self._items: dict[str, dict[str, list[Provided]]] = {k: {} for k in KINDS}
        for it in items:
            self._items[it.kind].setdefault(it.name, []).append(it)

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        extra: Iterable[tuple[object, str]] = (),
        entry_points: bool = True,
    ) -> Registry:
        """Discover plugins: the built-ins, entry points of group ``evoprune``, and ``extra``.

        ``extra`` holds ``(plugin, distribution-name)`` pairs registered in-process (tests).
        """
        from . import _builtin_plugins as builtins
        from .version import __version__

        env = os.environ if env is None else env
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(HookSpecs)
        infos: list[PluginInfo] = []
        items: list[Provided] = []
        unmatched: list[str] = []

        candidates: list[tuple[str, str, str, bool, Any]] = [
            ("evoprune", "evoprune", __version__, True, lambda: builtins)
        ]
        selected = (env.get("EVOPRUNE_PLUGINS") or "").strip()
        if entry_points and selected.lower() != "none":
            wanted = (
                {_norm(s.strip()) for s in selected.split(",") if s.strip()} if selected else None
            )
            seen: set[str] = set()
            for ep in sorted(md.entry_points(group=PROJECT), key=lambda e: e.name):
                dist = ep.dist.name if ep.dist is not None else ep.name
                version = ep.dist.version if ep.dist is not None else "unknown"
                seen.update((_norm(dist), _norm(ep.name)))
                if (
                    wanted is not None
                    and _norm(dist) not in wanted
                    and _norm(ep.name) not in wanted
                ):
                    continue
                candidates.append((ep.name, dist, version, False, ep.load))
            for missing in sorted((wanted or set()) - seen - {PROJECT}):
                unmatched.append(missing)
                _warn(f"EVOPRUNE_PLUGINS names {missing!r}, which is not an installed plugin")
        for plugin, dist in extra:
            candidates.append((dist, dist, "in-process", False, lambda p=plugin: p))

        for name, dist, version, builtin, loader in candidates:
            info = PluginInfo(name, dist, version, builtin)
            infos.append(info)
            try:
                obj = loader()
            except BaseException as exc:  # noqa: BLE001 - isolation is the point
                if isinstance(exc, KeyboardInterrupt):
                    raise
                cls._broken(info, f"import failed: {_one_line(exc)}")
                continue
            try:
                pm.register(obj, name=f"{dist}/{name}")
                unknown = [hc.name for hc in pm.get_hookcallers(obj) or [] if hc.spec is None]
                if unknown:
                    raise TypeError(
                        f"unknown hook {', '.join(unknown)}; known: {', '.join(KINDS.values())}"
                    )
            except Exception as exc:  # noqa: BLE001
                if pm.is_registered(obj):
                    pm.unregister(obj)
                cls._broken(info, f"invalid plugin: {_one_line(exc)}")
                continue
            got: list[Provided] = []
            try:
                for kind, hook in KINDS.items():
                    impls = [i for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin is obj]
                    for impl in impls:
                        info.hooks.append(hook)
                        result = impl.function()
                        if result is None:
                            continue
                        if not isinstance(result, (list, tuple)):
                            raise TypeError(f"{hook} returned {result!r}, not a list")
                        for item in result:
                            item_name = _validate_item(kind, item)
                            if any(g.kind == kind and g.name == item_name for g in got):
                                raise TypeError(f"{kind} {item_name!r} registered twice")
                            got.append(Provided(kind, item_name, item, name, dist, version))
            except Exception as exc:  # noqa: BLE001
                pm.unregister(obj)
                info.hooks.clear()
                cls._broken(info, f"hook failed: {_one_line(exc)}")
                continue
            for it in got:
                info.provides.setdefault(it.kind, []).append(it.name)
            items.extend(got)
        return cls(infos, items, unmatched)

    @staticmethod
    def _broken(info: PluginInfo, reason: str) -> None:
        info.broken = reason
        _warn(
            f"plugin {info.name!r} from distribution {info.distribution!r} "
            f"{info.version} skipped: {reason}"
        )

    # -- lookup --------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        """Names usable in configuration; a name two plugins provide appears as ``dist:name``."""
        out = []
        for name, provs in sorted(self._items[kind].items()):
            out.extend([name] if len(provs) == 1 else [p.qualified for p in provs])
        return out

    def entries(self, kind: str) -> list[Provided]:
        return [p for provs in self._items[kind].values() for p in provs]

    def get(self, kind: str, name: str, where: str = "") -> Provided:
        """The component called ``name`` (or ``dist:name``); errors name the allowed values."""
        label = where or kind
        dist, _, short = name.rpartition(":")
        provs = self._items[kind].get(short, [])
        if dist:  # a distribution name or an entry-point name
            provs = [p for p in provs if _norm(dist) in (_norm(p.distribution), _norm(p.plugin))]
        if not provs:
            raise PluginError(
                f"{label}: unknown {kind} {name!r}; allowed: " + ", ".join(self.names(kind))
            )
        if len(provs) > 1:
            dists = " and ".join(repr(p.distribution) for p in provs)
            raise PluginError(
                f"{label}: {kind} {name!r} is provided by {dists}; pick one with "
                + " or ".join(repr(p.qualified) for p in provs)
            )
        return provs[0]

    def engine(self, name: str, where: str = "engine") -> Provided:
        return self.get("engine", name, where)

    def collisions(self) -> dict[str, list[str]]:
        """Names two or more plugins provide, ``"kind name" -> [dist:name, ...]``."""
        return {
            f"{kind} {name}": [p.qualified for p in provs]
            for kind in KINDS
            for name, provs in sorted(self._items[kind].items())
            if len(provs) > 1
        }

    def operator(self, name: str, where: str = "pruning.operator") -> Provided:
        return self.get("operator", name, where)

    def schedule(self, name: str, where: str = "pruning.schedule") -> Provided:
        return self.get("schedule", name, where)

    def tracker(self, name: str, where: str = "tracking") -> Provided:
        return self.get("tracker", name, where)

    def resolve(self, cfg: RunConfig, source: str = "<config>") -> ResolvedRun:
        """``cfg`` resolved against this registry (``evoprune_core.resolve(cfg, self, source)``)."""
        from .resolved import resolve  # engines and torch load on first use, not with the CLI

        return resolve(cfg, self, source)

    def dataset(self, name: str, where: str = "data.name") -> Provided:
        return self.get("dataset", name, where)

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able description of every plugin and what it provides."""
        out = []
        for info in self.plugins:
            provided: dict[str, list[dict[str, Any]]] = {}
            for kind in KINDS:
                for p in self.entries(kind):
                    if p.plugin != info.name or p.distribution != info.distribution:
                        continue
                    provided.setdefault(kind + "s", []).append(_describe_item(p))
            out.append(
                {
                    "name": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "builtin": info.builtin,
                    "hooks": info.hooks,
                    "provides": provided,
                    "broken": info.broken,
                }
            )
        return out


def _describe_item(p: Provided) -> dict[str, Any]:
    obj = p.obj
    d: dict[str, Any] = {"name": p.name, "parameters": [q.describe() for q in obj.parameters]}
    if p.kind == "operator":
        d["needs"] = sorted(obj.needs)
        d["uses_amount"] = bool(obj.uses_amount)
    if p.kind == "engine":
        d["keys"] = list(obj.own_keys()) if obj.section or obj.parameters else []
    d["description"] = getattr(obj, "description", "") or getattr(obj, "help", "")
    return d
