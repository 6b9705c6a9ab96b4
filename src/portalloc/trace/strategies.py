# Hypothesis strategies for traces: the generator of generate.py, with hypothesis supplying the randomness.
#
# Rules: import this module only where hypothesis is installed (it is a test dependency; nothing else
# in portalloc imports it). The traces have the same distribution as `portalloc verify`'s: the
# generator runs on a random.Random that hypothesis controls (st.randoms(use_true_random=False)), so
# every decision is a hypothesis draw (replayable from the example database, and shrinkable) without
# hypothesis's preference for small integers skewing the mix of ops (drawing each decision as a bounded
# integer made most traces a pile of socket() calls). hypothesis still starts with "small" randoms, so the
# first ~100 examples of traces() are simpler than verify's; seeded_traces() draws only a seed and is
# exactly verify's distribution from the first example on (for the expensive live differential test,
# which minimizes failures with portalloc.trace.minimize instead of shrinking).
"""``traces()``: a hypothesis strategy of random, valid, live-safe traces."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from portalloc.trace.format import Trace, trace_from_dicts
from portalloc.trace.generate import GenConfig, RandomChooser, generate_ops


@st.composite
def _traces(draw: Callable[[st.SearchStrategy[Any]], Any], cfg: GenConfig) -> Trace:
    rng = draw(st.randoms(use_true_random=False, note_method_calls=False))
    return trace_from_dicts(generate_ops(RandomChooser(rng), cfg), source="<hypothesis>")


def traces(cfg: GenConfig | None = None, **knobs: Any) -> st.SearchStrategy[Trace]:
    """Random traces as :func:`portalloc.trace.generate.random_trace` makes them; ``knobs`` are
    :class:`GenConfig` fields (e.g. ``max_ops=20``)."""
    return _traces(cfg or GenConfig(**knobs))


@st.composite
def _seeded(draw: Callable[[st.SearchStrategy[Any]], Any], cfg: GenConfig) -> Trace:
    seed = draw(st.integers(0, 2**64 - 1))
    return trace_from_dicts(generate_ops(RandomChooser(random.Random(seed)), cfg), source=f"<hypothesis seed {seed}>")


def seeded_traces(cfg: GenConfig | None = None, **knobs: Any) -> st.SearchStrategy[Trace]:
    """Random traces from a hypothesis-drawn seed: the exact distribution of ``portalloc verify`` (no
    meaningful shrinking; the trace's ``source`` names the seed)."""
    return _seeded(cfg or GenConfig(**knobs))
