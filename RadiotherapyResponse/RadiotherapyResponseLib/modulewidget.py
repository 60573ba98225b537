"""What the widgets of the modules that run background jobs share: the parameter node's life cycle, the scene's
close (a running job is cancelled), Run buttons that say what stops them, and a patient exported to a job folder.

A module's widget class lists :class:`JobModuleWidget` first among its bases, then ``ScriptedLoadableModuleWidget``
and ``VTKObservationMixin``, and gives ``self.logic`` (with ``getParameterNode()``), ``self.panel`` (its
:class:`~.jobpanel.JobPanel`), ``updateGUI()`` and ``guessInputs(parameterNode)``. Widgets are reached only through
those objects (no ``self.ui`` here). Loads without Qt or Slicer; uses them when called in the application.
"""

from __future__ import annotations

from typing import Callable


class JobModuleWidget:
    """Parameter node, scene and job-folder plumbing of a job module's widget (a mixin)."""

    _parameterNode = None
    _parameterNodeGuiTag = None
    _lastProblem = None  # the input problem shown in the status label

    def cleanup(self):
        if self.panel:
            self.panel.cancel()  # never leave a child process behind
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        import vtk

        if self._parameterNode:  # kept: a job that ends while the module is left still records its outputs
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)

    def observeScene(self, scene) -> None:
        """Call in setup(): a closing scene cancels the running job, and the parameter node follows the scene."""
        self.addObserver(scene, scene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(scene, scene.EndCloseEvent, self.onSceneEndClose)

    def onSceneStartClose(self, caller, event):
        self.panel.onSceneStartClose()  # a running job is cancelled: its results belong to the closing scene
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        self.guessInputs(self._parameterNode)  # save the user a few clicks; keeps what is already chosen

    def setParameterNode(self, inputParameterNode):
        import vtk

        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # In the .ui file, the SlicerParameterName dynamic property names the parameter a widget shows
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
        self.updateGUI()

    def _setParameter(self, name: str, value) -> None:
        if self._parameterNode:
            setattr(self._parameterNode, name, value)

    def showProblem(self, button, problem: str | None, tip: str, inStatus: bool = False) -> None:
        """Enable ``button`` when there is no ``problem`` and no job runs; its tooltip says the problem, else ``tip``.
        ``inStatus``: the problem also shows in the status label (and is cleared from it once solved)."""
        running, status = self.panel.running, self.panel.statusLabel
        button.enabled = problem is None and not running
        button.toolTip = problem or tip
        if not inStatus:
            return
        if problem and not running:
            status.text = problem
        elif not running and status.text == self._lastProblem:
            status.text = ""
        self._lastProblem = problem

    def exportToJobFolder(self, prefix: str, export: Callable[[object], object]):
        """A new job folder with what ``export(folder path)`` writes: (folder, its result); (None, None) after
        showing why the export failed (the folder is then removed)."""
        import slicer

        from .jobfolder import JobFolder

        folder = JobFolder(prefix)
        try:
            with slicer.util.tryWithErrorDisplay("Could not export the inputs for the job.", waitCursor=True):
                return folder, export(folder.path)
        except Exception as error:  # noqa: BLE001 - shown by tryWithErrorDisplay, and in the status label
            folder.remove()
            self.panel.statusLabel.text = f"Failed: {error}"
            return None, None
