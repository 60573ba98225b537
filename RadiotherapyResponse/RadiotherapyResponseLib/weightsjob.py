"""ImageNet weights before a deep-feature run: there, or downloaded in a background job with the user's consent.

A network's published weights are never fetched silently and never replaced by random ones: when they are not in
the weights folder the user is told where the file goes and asked whether to download it now
(``rtresponse weights download`` as a job on the module's :class:`~.jobpanel.JobPanel`, so Slicer stays usable
and Cancel works); the run starts when the download has finished. Needs neither Qt nor Slicer when ``ask`` and
``tell`` are given.
"""

from __future__ import annotations

from typing import Callable


def downloadArguments(model: str, weightsFolder) -> list[str]:
    return ["weights", "download", str(model), "--weights-folder", str(weightsFolder)]


def withImageNetWeights(panel, model: str, weightsFolder, action: Callable[[], object], title: str = "",
                        ask: Callable[[str], bool] | None = None, tell: Callable[[str], None] | None = None) -> bool:
    """``action()`` now when ``model``'s ImageNet weights are in ``weightsFolder`` (returns True). Otherwise the panel's
    status says what is missing; published weights are offered for download (``ask(question)``), then ``action()``
    runs when the download job succeeds; weights nobody publishes are explained (``tell(message)``). Returns False."""
    from rtresponse.features import deep2d

    spec = deep2d.model_spec(model)
    try:
        deep2d.require_weights(spec, weightsFolder)
    except deep2d.WeightsNotFound as error:
        panel.statusLabel.text = f"No weights: {error}"
        if not spec.weights:
            (tell or _tell(title))(str(error))
        elif (ask or _ask(title))(f"{error}\n\nDownload the ImageNet weights of {spec.name} into {weightsFolder} now? "
                                  "This needs internet access."):
            panel.start(downloadArguments(spec.name, weightsFolder),
                        f"Downloading the ImageNet weights of {spec.name}...", lambda result: action(),
                        cancelledText="Cancelled: the weights were not downloaded.")
        return False
    action()
    return True


def _ask(title):
    import slicer

    return lambda question: slicer.util.confirmYesNoDisplay(question, windowTitle=title)


def _tell(title):
    import slicer

    return lambda message: slicer.util.errorDisplay(message, windowTitle=title)
