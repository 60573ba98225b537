"""Measuring each segment of a segmentation node on a volume node: one row per segment, failures isolated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STATUS = "status"


def measure_segments(volume_node, segmentation_node, segment_ids: Sequence[str],
                     measure: Callable[["object", "object"], dict], cancelled: Exception,
                     progress: Callable[[int, int], None] | None = None,
                     should_cancel: Callable[[], bool] | None = None,
                     columns: Sequence[str] | None = None) -> "pd.DataFrame":
    """``measure(image, mask) -> {feature: value}`` per segment (index: segment names) plus ``status``.

    A segment that fails (empty, say) gets its reason in ``status`` and the others complete;
    ``should_cancel`` is polled between segments and returning True raises ``cancelled``.
    ``columns``: the feature columns, when known (so an all-failed table still has them).
    """
    import pandas as pd

    from .. import mrml

    names = mrml.segment_names(segmentation_node)
    image = mrml.volume_node_to_image(volume_node)  # once: every segment is measured on this volume
    rows, index = [], []
    for done, segment_id in enumerate(segment_ids, start=1):
        if should_cancel is not None and should_cancel():
            raise cancelled
        try:
            row = dict(measure(image, mrml.segment_to_mask(segmentation_node, segment_id, volume_node)))
            row[STATUS] = "ok"
        except InputError as error:
            row = {STATUS: error.problem}
        rows.append(row)
        index.append(names.get(segment_id, segment_id))
        if progress:
            progress(done, len(segment_ids))
    frame = pd.DataFrame(rows, index=pd.Index(index, name="segment"),
                         columns=None if columns is None else list(columns) + [STATUS])
    return frame[[c for c in frame.columns if c != STATUS] + [STATUS]]
