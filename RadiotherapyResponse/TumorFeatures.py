"""Tumor Features module: handcrafted radiomics (PyRadiomics) and deep 2D-CNN features of segments in the scene,
one table node per run, and Grad-CAM activation maps.

A thin widget over ``rtresponse.features.handcrafted`` and ``rtresponse.features.deep2d``, imported lazily inside
functions so that loading this module is instant and never installs anything.
"""

import logging
import os

import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

DEPENDENCY_GROUPS = ["radiomics"]
DEEP_DEPENDENCY_GROUPS = ["deep"]
# Weights source (saved in the parameter node) -> combo box text. "random" is never used unless picked here.
DEEP_WEIGHT_SOURCES = {"imagenet": "ImageNet (weights folder)", "file": "Weights file",
                       "random": "Random weights (testing only)"}
SEGMENT_EDITOR_SINGLETON_TAG = "TumorFeaturesSegmentEditor"  # the embedded editor's own parameter node
STATUS_OK = "ok"


class TumorFeatures(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Tumor Features"
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse", "Segmentations"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = """
Handcrafted radiomics (PyRadiomics) of the segments of a segmentation on a volume. Pick the volume, the segmentation
and one or more segments (all when none is selected); draw or correct a GTV with the embedded segment editor; pick a
preset or a PyRadiomics parameter file and press Run. Each run makes a new table (rows: segments, columns: features,
plus a status column saying why a segment could not be measured).
"Deep features (2D CNN)" does the same with the outputs of a frozen ImageNet network on each segment's largest
slice, and shows a network's Grad-CAM activation map; its device and weights folder are the Radiotherapy Response
module's settings.
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Feature extraction by PyRadiomics (van Griethuysen et al., Cancer Research 2017). Presets follow the methods of the
papers implemented by the Radiotherapy Response extension.
"""


@parameterNodeWrapper
class TumorFeaturesParameterNode:
    """Module state, saved with the scene.

    inputVolume, inputSegmentation: the image and the segments to measure.
    preset: a feature-extraction preset (Resources/Presets); parameterFile: a PyRadiomics parameter file that
    overrides the preset when set. outputTable: the table made by the latest run.
    deepModel, deepWeightsSource ("imagenet", "file" or "random"), deepWeightsFile: the deep-feature network and
    its weights.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    inputSegmentation: vtkMRMLSegmentationNode
    preset: str = "ct-tanaka"
    parameterFile: str = ""
    outputTable: vtkMRMLTableNode
    deepModel: str = "inception_resnet_v2"
    deepWeightsSource: str = "imagenet"
    deepWeightsFile: str = ""


class TumorFeaturesWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedSegmentation = None
        self._run = None  # RadiotherapyResponse.CancellableRun, made in setup()

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TumorFeatures.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = TumorFeaturesLogic()

        from rtresponse.features import deep2d, handcrafted

        self.ui.presetComboBox.addItems(handcrafted.list_presets())
        for index, (name, spec) in enumerate(deep2d.MODELS.items()):
            self.ui.deepModelComboBox.addItem(name)
            self.ui.deepModelComboBox.setItemData(index, spec.describe(), qt.Qt.ToolTipRole)  # says substitutes
        self.ui.deepWeightsSourceComboBox.addItems(list(DEEP_WEIGHT_SOURCES.values()))
        self.ui.segmentsTableView.setSelectionMode(qt.QAbstractItemView.ExtendedSelection)
        self.ui.segmentsTableView.setOpacityColumnVisible(False)
        editor = self.ui.segmentEditorWidget
        editor.setMaximumNumberOfUndoStates(10)
        editor.setSegmentationNodeSelectorVisible(False)  # driven by the Inputs section
        editor.setSourceVolumeNodeSelectorVisible(False)
        # The editor's parameter node must be set before its scene (see qMRMLSegmentEditorWidget.h)
        editor.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.progressBar.hide()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # preset and parameterFile are str parameters: Slicer binds str to a QComboBox only with a Choice annotation
        # and to a ctkPathLineEdit not at all, so these two widgets are synchronised here instead.
        self.ui.presetComboBox.connect("currentIndexChanged(int)", self.onPresetChanged)
        self.ui.parameterFilePathLineEdit.connect("currentPathChanged(QString)", self.onParameterFileChanged)
        self.ui.segmentsTableView.connect("selectionChanged(QItemSelection,QItemSelection)", self.updateGUI)
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.deepModelComboBox.connect("currentIndexChanged(int)", self.onDeepModelChanged)
        self.ui.deepWeightsSourceComboBox.connect("currentIndexChanged(int)", self.onDeepWeightsSourceChanged)
        self.ui.deepWeightsFilePathLineEdit.connect("currentPathChanged(QString)", self.onDeepWeightsFileChanged)
        self.ui.deepRunButton.connect("clicked(bool)", self.onDeepRunButton)
        self.ui.deepActivationMapButton.connect("clicked(bool)", self.onActivationMapButton)
        import RadiotherapyResponse

        self._run = RadiotherapyResponse.CancellableRun(
            self.ui.cancelButton, self.ui.progressBar, self.ui.statusLabel,
            [self.ui.inputsCollapsibleButton,
             self.ui.segmentEditorCollapsibleButton,
             self.ui.settingsCollapsibleButton,
             self.ui.outputsCollapsibleButton,
             self.ui.deepCollapsibleButton],
            progressText="Measured {done} of {total} segment(s)...",
            cancelText="Cancelling after the segment being measured...", onChange=self.updateGUI)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.ui.segmentEditorWidget.setActiveEffect(None)
        self.ui.segmentEditorWidget.removeViewObservations()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.ui.segmentEditorWidget.removeViewObservations()

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())
        self.setParameterNode(self.logic.getParameterNode())
        # Save the user a few clicks: the first volume and segmentation of the scene
        if not self._parameterNode.inputVolume:
            volumes = [v for v in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                       if not v.IsA("vtkMRMLLabelMapVolumeNode")]
            if volumes:
                self._parameterNode.inputVolume = volumes[0]
        if not self._parameterNode.inputSegmentation:
            segmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if segmentation:
                self._parameterNode.inputSegmentation = segmentation

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # In the .ui file, the SlicerParameterName dynamic property names the parameter a widget shows
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
        self.updateGUI()

    def updateGUI(self, *unused):
        """Follow the parameter node: preset and parameter file, deep settings, segment table and editor, buttons."""
        p = self._parameterNode
        segmentation = p.inputSegmentation if p else None
        volume = p.inputVolume if p else None
        if p:
            wasBlocked = self.ui.presetComboBox.blockSignals(True)
            self.ui.presetComboBox.setCurrentIndex(self.ui.presetComboBox.findText(p.preset))
            self.ui.presetComboBox.blockSignals(wasBlocked)
            if self.ui.parameterFilePathLineEdit.currentPath != p.parameterFile:
                wasBlocked = self.ui.parameterFilePathLineEdit.blockSignals(True)
                self.ui.parameterFilePathLineEdit.currentPath = p.parameterFile
                self.ui.parameterFilePathLineEdit.blockSignals(wasBlocked)
            self.ui.presetComboBox.enabled = not p.parameterFile and not self._running
            self._updateDeepGUI(p)
        if self.ui.segmentsTableView.segmentationNode() is not segmentation:
            self.ui.segmentsTableView.setSegmentationNode(segmentation)
        editor = self.ui.segmentEditorWidget
        if editor.segmentationNode() is not segmentation:
            editor.setSegmentationNode(segmentation)
        if segmentation and editor.sourceVolumeNode() is not volume:
            editor.setSourceVolumeNode(volume)
        self._observeSegmentation(segmentation)
        self._checkCanApply()

    def _updateDeepGUI(self, p):
        for combo, text in ((self.ui.deepModelComboBox, p.deepModel),
                            (self.ui.deepWeightsSourceComboBox, DEEP_WEIGHT_SOURCES.get(p.deepWeightsSource, ""))):
            wasBlocked = combo.blockSignals(True)
            combo.setCurrentIndex(combo.findText(text))
            combo.blockSignals(wasBlocked)
        index = self.ui.deepModelComboBox.currentIndex
        self.ui.deepModelComboBox.toolTip = self.ui.deepModelComboBox.itemData(index, qt.Qt.ToolTipRole) or ""
        if self.ui.deepWeightsFilePathLineEdit.currentPath != p.deepWeightsFile:
            wasBlocked = self.ui.deepWeightsFilePathLineEdit.blockSignals(True)
            self.ui.deepWeightsFilePathLineEdit.currentPath = p.deepWeightsFile
            self.ui.deepWeightsFilePathLineEdit.blockSignals(wasBlocked)
        self.ui.deepWeightsFilePathLineEdit.enabled = p.deepWeightsSource == "file"
        settings = self.hubSettings()
        self.ui.deepSettingsLabel.text = f"device {settings.device}, weights folder {settings.weights_folder}"

    @staticmethod
    def hubSettings():
        """Device and weights folder: the Radiotherapy Response module's settings (read each time: they may change)."""
        import RadiotherapyResponse

        return RadiotherapyResponse.RadiotherapyResponseLogic().settings()

    def _observeSegmentation(self, segmentation):
        """Segments added, removed or renamed (e.g. in the editor) change what Run measures."""
        if segmentation is self._observedSegmentation:
            return
        events = (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
                  slicer.vtkSegmentation.SegmentModified)
        for event in events if self._observedSegmentation else ():
            self.removeObserver(self._observedSegmentation, event, self.updateGUI)
        self._observedSegmentation = segmentation
        for event in events if segmentation else ():
            self.addObserver(segmentation, event, self.updateGUI)

    def _checkCanApply(self):
        p = self._parameterNode
        segmentIds = self.segmentIdsToMeasure()
        if p is None or not p.inputVolume:
            inputProblem = "Select a volume."
        elif not p.inputSegmentation:
            inputProblem = "Select or create a segmentation."
        elif not segmentIds:
            inputProblem = "The segmentation has no segments: draw one in 'Draw or correct segments'."
        else:
            inputProblem = None
        problem = inputProblem
        if problem is None and not p.parameterFile and self.ui.presetComboBox.findText(p.preset) < 0:
            problem = f"Unknown preset '{p.preset}': pick a preset or a parameter file."
        selected = len(self.ui.segmentsTableView.selectedSegmentIDs()) if p and p.inputSegmentation else 0
        if problem:
            self.ui.segmentSelectionLabel.text = problem
        elif selected:
            self.ui.segmentSelectionLabel.text = f"{selected} selected segment(s) will be measured."
        else:
            self.ui.segmentSelectionLabel.text = f"No segment selected: all {len(segmentIds)} will be measured."
        self.ui.runButton.enabled = problem is None and not self._running
        self.ui.runButton.toolTip = problem or "Compute the features of the selected segments into a new table."
        if inputProblem is None and self.ui.deepModelComboBox.findText(p.deepModel) < 0:
            inputProblem = f"Unknown network '{p.deepModel}': pick a network."
        elif inputProblem is None and p.deepWeightsSource not in DEEP_WEIGHT_SOURCES:
            inputProblem = f"Unknown weights source '{p.deepWeightsSource}': pick one."
        elif inputProblem is None and p.deepWeightsSource == "file" and not p.deepWeightsFile:
            inputProblem = "Select a weights file, or another weights source."
        for button, tip in (
                (self.ui.deepRunButton, "Compute the deep features of the selected segments into a new table."),
                (self.ui.deepActivationMapButton, "Show the Grad-CAM map of the first selected segment (the first "
                                                  "segment when none is selected) over the volume.")):
            button.enabled = inputProblem is None and not self._running
            button.toolTip = inputProblem or tip

    def segmentIdsToMeasure(self):
        """The segments selected in the table; all segments when none is selected."""
        segmentation = self._parameterNode.inputSegmentation if self._parameterNode else None
        if not segmentation:
            return []
        selected = list(self.ui.segmentsTableView.selectedSegmentIDs())
        if selected:
            return selected
        segments = segmentation.GetSegmentation()
        return [segments.GetNthSegmentID(i) for i in range(segments.GetNumberOfSegments())]

    def onPresetChanged(self, index):
        if self._parameterNode and index >= 0:
            self._parameterNode.preset = self.ui.presetComboBox.itemText(index)

    def onParameterFileChanged(self, path):
        if self._parameterNode:
            self._parameterNode.parameterFile = path

    def onDeepModelChanged(self, index):
        if self._parameterNode and index >= 0:
            self._parameterNode.deepModel = self.ui.deepModelComboBox.itemText(index)

    def onDeepWeightsSourceChanged(self, index):
        if self._parameterNode and index >= 0:
            self._parameterNode.deepWeightsSource = list(DEEP_WEIGHT_SOURCES)[index]

    def onDeepWeightsFileChanged(self, path):
        if self._parameterNode:
            self._parameterNode.deepWeightsFile = path

    def deepWeights(self):
        """The ``weights`` argument of rtresponse.features.deep2d: "imagenet", a file path, or None (random)."""
        p = self._parameterNode
        return {"imagenet": "imagenet", "file": p.deepWeightsFile, "random": None}[p.deepWeightsSource]

    @property
    def _running(self):
        return self._run is not None and self._run.running

    def onRunButton(self):
        import RadiotherapyResponse

        if not RadiotherapyResponse.ensureDependencies(DEPENDENCY_GROUPS):
            self.ui.statusLabel.text = "PyRadiomics is needed to compute features: it was not installed."
            return
        from rtresponse.features import handcrafted

        p = self._parameterNode
        segmentIds = self.segmentIdsToMeasure()
        self.ui.segmentEditorWidget.setActiveEffect(None)  # no editing while the segments are measured
        self._run.setRunning(True)
        self.ui.progressBar.maximum = len(segmentIds)
        self.ui.statusLabel.text = f"Measuring {len(segmentIds)} segment(s)..."
        try:
            with slicer.util.tryWithErrorDisplay("Feature extraction failed."):
                try:
                    table = self.logic.run(p.inputVolume, p.inputSegmentation, segmentIds, p.parameterFile or p.preset,
                                           progress=self._run.progress, shouldCancel=self._run.shouldCancel)
                except handcrafted.Cancelled:
                    self.ui.statusLabel.text = "Cancelled: no table was made."
                    return
                except Exception as error:
                    self.ui.statusLabel.text = f"Failed: {error}"
                    raise
                p.outputTable = table
                self.logic.showTable(table)
                self.ui.statusLabel.text = self.summary(table)
        finally:
            self._run.setRunning(False)

    def onDeepRunButton(self):
        if self._deepDependenciesInstalled():
            self._offeringWeightsDownload(self._runDeep)

    def onActivationMapButton(self):
        if self._deepDependenciesInstalled():
            self._offeringWeightsDownload(self._showActivationMap)

    def _deepDependenciesInstalled(self):
        import RadiotherapyResponse

        if RadiotherapyResponse.ensureDependencies(DEEP_DEPENDENCY_GROUPS):
            return True
        self.ui.statusLabel.text = "PyTorch, timm and MONAI are needed for deep features: they were not installed."
        return False

    def _offeringWeightsDownload(self, action):
        """``action()`` returns a WeightsNotFound error or None. On an error, say where the weights go and offer to
        download published ones, then run ``action`` again; never fall back to random weights."""
        from rtresponse.features import deep2d

        error = action()
        if error is None:
            return
        slicer.util.errorDisplay(str(error), windowTitle="Tumor Features")
        spec = deep2d.MODELS[self._parameterNode.deepModel]
        folder = self.hubSettings().weights_folder
        if spec.weights is None or not slicer.util.confirmYesNoDisplay(
                f"Download the ImageNet weights of {spec.name} into {folder} now? This needs internet access.",
                windowTitle="Tumor Features"):
            return
        self.ui.statusLabel.text = f"Downloading the ImageNet weights of {spec.name}..."
        slicer.app.processEvents()
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            with slicer.util.tryWithErrorDisplay(f"Failed to download the weights of {spec.name}."):
                try:
                    deep2d.download_weights(spec.name, folder)
                except Exception as downloadError:
                    self.ui.statusLabel.text = f"Download failed: {downloadError}"
                    raise
        finally:
            qt.QApplication.restoreOverrideCursor()
        action()

    def _runDeep(self):
        from rtresponse.features import deep2d

        p = self._parameterNode
        segmentIds = self.segmentIdsToMeasure()
        self.ui.segmentEditorWidget.setActiveEffect(None)  # no editing while the segments are measured
        self._run.setRunning(True)
        self.ui.progressBar.maximum = len(segmentIds)
        self.ui.statusLabel.text = f"Loading {p.deepModel} to measure {len(segmentIds)} segment(s)..."
        slicer.app.processEvents()
        try:
            with slicer.util.tryWithErrorDisplay("Deep feature extraction failed."):
                try:
                    table = self.logic.runDeep(p.inputVolume, p.inputSegmentation, segmentIds, p.deepModel,
                                               self.deepWeights(), self.hubSettings(), progress=self._run.progress,
                                               shouldCancel=self._run.shouldCancel)
                except deep2d.Cancelled:
                    self.ui.statusLabel.text = "Cancelled: no table was made."
                    return None
                except deep2d.WeightsNotFound as error:
                    self.ui.statusLabel.text = f"No weights: {error}"
                    return error
                except Exception as error:
                    self.ui.statusLabel.text = f"Failed: {error}"
                    raise
                p.outputTable = table
                self.logic.showTable(table)
                self.ui.statusLabel.text = self.summary(table)
        finally:
            self._run.setRunning(False)
        return None

    def _showActivationMap(self):
        from rtresponse.features import deep2d

        p = self._parameterNode
        segmentId = self.segmentIdsToMeasure()[0]
        self.ui.statusLabel.text = f"Computing the Grad-CAM map of {p.deepModel}..."
        slicer.app.processEvents()
        with slicer.util.tryWithErrorDisplay("Activation map failed.", waitCursor=True):
            try:
                heat = self.logic.showActivationMap(p.inputVolume, p.inputSegmentation, segmentId, p.deepModel,
                                                    self.deepWeights(), self.hubSettings())
            except deep2d.WeightsNotFound as error:
                self.ui.statusLabel.text = f"No weights: {error}"
                return error
            except Exception as error:
                self.ui.statusLabel.text = f"Failed: {error}"
                raise
            self.ui.statusLabel.text = f"Activation map: '{heat.GetName()}'."
        return None

    def summary(self, table):
        failed = self.logic.failedSegments(table)
        rows = table.GetNumberOfRows()
        text = f"'{table.GetName()}': {rows - len(failed)} of {rows} segment(s) measured."
        if failed:
            text += "\nNot measured:\n" + "\n".join(f"  {name}: {status}" for name, status in failed.items())
            logging.warning(text)
        if failed and len(failed) == rows:
            slicer.util.warningDisplay(text, windowTitle="Tumor Features")
        return text


class TumorFeaturesLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points; everything that computes lives in ``rtresponse``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return TumorFeaturesParameterNode(super().getParameterNode())

    @staticmethod
    def getSegmentEditorNode(scene=None):
        """The embedded segment editor's parameter node: this module's own, not the Segment Editor module's."""
        scene = scene or slicer.mrmlScene
        node = scene.GetSingletonNode(SEGMENT_EDITOR_SINGLETON_TAG, "vtkMRMLSegmentEditorNode")
        if node is None:
            node = slicer.vtkMRMLSegmentEditorNode()
            node.SetSingletonTag(SEGMENT_EDITOR_SINGLETON_TAG)
            node = scene.AddNode(node)
        return node

    def run(self, volumeNode, segmentationNode, segmentIds, settings, tableName=None, progress=None,
            shouldCancel=None):
        """Handcrafted features of segments on a volume, in a new table node (rows: segments, columns: features).

        ``segmentIds``: segment IDs (or names); None or empty means every segment. ``settings``: a preset name,
        a PyRadiomics parameter file or a parameter dict. A segment that cannot be measured (empty, say) keeps
        its row with the reason in the ``status`` column. ``progress(done, total)`` is called after each segment;
        when ``shouldCancel()`` returns True, ``rtresponse.features.handcrafted.Cancelled`` is raised and no
        table is made. The table is named ``tableName`` or "<volume> features (<preset>)".
        """
        from rtresponse import mrml
        from rtresponse.errors import InputError
        from rtresponse.features import handcrafted

        if volumeNode is None:
            raise InputError("no volume selected")
        if segmentationNode is None:
            raise InputError("no segmentation selected")
        segmentIds = list(segmentIds or mrml.segment_names(segmentationNode))
        if not segmentIds:
            raise InputError("the segmentation has no segments", node=segmentationNode.GetName())
        handcrafted.load_settings(settings)  # a bad preset or parameter file fails here, not once per segment
        frame = handcrafted.extract_segments(volumeNode, segmentationNode, segmentIds, settings, progress=progress,
                                             should_cancel=shouldCancel)
        scene = volumeNode.GetScene() or slicer.mrmlScene
        name = tableName or f"{volumeNode.GetName()} features ({self.settingsLabel(settings)})"
        table = mrml.dataframe_to_table_node(frame, scene.GenerateUniqueName(name), scene=scene)
        table.SetAttribute("TumorFeatures.volume", volumeNode.GetName())
        table.SetAttribute("TumorFeatures.segmentation", segmentationNode.GetName())
        table.SetAttribute("TumorFeatures.settings", str(settings) if not isinstance(settings, dict) else "dict")
        return table

    def runDeep(self, volumeNode, segmentationNode, segmentIds, model, weights, settings, tableName=None,
                progress=None, shouldCancel=None):
        """Deep features of segments on a volume, in a new table node (rows: segments, 1000 feature columns, status).

        ``model``: a name of ``rtresponse.features.deep2d.MODELS``; ``weights``: "imagenet" (from
        ``settings.weights_folder``), a weights file, or None for random weights (testing only); ``settings``:
        the hub's settings (device, weights folder). Missing ImageNet weights raise ``deep2d.WeightsNotFound``
        before any segment is measured; otherwise as :meth:`run`. The table is named ``tableName`` or
        "<volume> deep features <model>".
        """
        from rtresponse import mrml
        from rtresponse.errors import InputError
        from rtresponse.features import deep2d

        if volumeNode is None:
            raise InputError("no volume selected")
        if segmentationNode is None:
            raise InputError("no segmentation selected")
        segmentIds = list(segmentIds or mrml.segment_names(segmentationNode))
        if not segmentIds:
            raise InputError("the segmentation has no segments", node=segmentationNode.GetName())
        frame = deep2d.extract_segments(volumeNode, segmentationNode, segmentIds, model=model, weights=weights,
                                        device=settings.device, progress=progress, should_cancel=shouldCancel,
                                        weights_folder=settings.weights_folder)
        scene = volumeNode.GetScene() or slicer.mrmlScene
        # Random weights give meaningless features: say so in the name, where nobody can miss it
        name = tableName or f"{volumeNode.GetName()} deep features {model}" + (" (random)" if weights is None else "")
        table = mrml.dataframe_to_table_node(frame, scene.GenerateUniqueName(name), scene=scene)
        table.SetAttribute("TumorFeatures.volume", volumeNode.GetName())
        table.SetAttribute("TumorFeatures.segmentation", segmentationNode.GetName())
        table.SetAttribute("TumorFeatures.model", model)
        table.SetAttribute("TumorFeatures.weights", "random" if weights is None else os.fspath(weights))
        return table

    def showActivationMap(self, volumeNode, segmentationNode, segmentId, model, weights, settings):
        """A new volume with the Grad-CAM map of a segment's largest slice, shown over the volume; returns it."""
        from rtresponse.features import deep2d

        heat = deep2d.gradcam_volume_node(volumeNode, segmentationNode, segmentId, model=model, weights=weights,
                                          device=settings.device, weights_folder=settings.weights_folder)
        slicer.util.setSliceViewerLayers(background=volumeNode, foreground=heat, foregroundOpacity=0.5)
        self.jumpSlicesToMap(heat)
        return heat

    @staticmethod
    def jumpSlicesToMap(heatNode):
        """Move every slice view (without panning) to the centre of the map's non-zero voxels: it fills one slice."""
        import numpy as np

        kji = np.argwhere(slicer.util.arrayFromVolume(heatNode) > 0)
        if not len(kji):
            return
        ijkToRas = vtk.vtkMatrix4x4()
        heatNode.GetIJKToRASMatrix(ijkToRas)
        ras = ijkToRas.MultiplyPoint([float(v) for v in kji.mean(axis=0)[::-1]] + [1.0])[:3]
        for sliceNode in slicer.util.getNodesByClass("vtkMRMLSliceNode"):
            sliceNode.JumpSliceByOffsetting(*ras)

    @staticmethod
    def settingsLabel(settings):
        """Short name of the settings for table names: the preset, the parameter file's name, or "custom"."""
        from rtresponse.features import handcrafted

        if isinstance(settings, (str, os.PathLike)):
            text = os.fspath(settings)
            if text in handcrafted.list_presets():
                return text
            return os.path.splitext(os.path.basename(text))[0] or text
        return "custom"

    @staticmethod
    def failedSegments(tableNode):
        """{segment name: status} of the rows of a feature table whose status is not "ok"."""
        from rtresponse import mrml

        frame = mrml.table_node_to_dataframe(tableNode)
        if "status" not in frame.columns:
            return {}
        return {str(name): str(status) for name, status in frame["status"].items() if status != STATUS_OK}

    @staticmethod
    def showTable(tableNode):
        """Show the table in a layout with a table view (does nothing without the application's layout)."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:
            return
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        applicationLogic = slicer.app.applicationLogic()
        applicationLogic.GetSelectionNode().SetActiveTableID(tableNode.GetID())
        applicationLogic.PropagateTableSelection()


class TumorFeaturesTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_TwoSegmentsOneEmpty()
        self.setUp()
        self.test_Cancel()
        self.setUp()
        self.test_DeepFeaturesRandomWeights()

    def makeScene(self):
        """A 32³ synthetic image with a bright sphere (radius 8 voxels, 1 x 1 x 2 mm voxels) and a segmentation
        with the sphere ("GTV") and an empty segment ("Empty"); returns (volume, segmentation, segment IDs)."""
        import numpy as np
        import SimpleITK as sitk
        from rtresponse import mrml

        z, y, x = np.mgrid[:32, :32, :32]
        inside = (z - 16) ** 2 + (y - 16) ** 2 + (x - 16) ** 2 <= 8 ** 2
        noise = np.random.default_rng(0).normal(0.0, 20.0, inside.shape)
        image = sitk.GetImageFromArray((np.where(inside, 60.0, -40.0) + noise).astype(np.int16))
        image.SetSpacing((1.0, 1.0, 2.0))
        volume = mrml.image_to_volume_node(image, "TumorFeaturesTestImage", scene=slicer.mrmlScene)
        segmentation = mrml.new_segmentation_node("TumorFeaturesTestSegmentation", volume, scene=slicer.mrmlScene)
        mask = sitk.GetImageFromArray(inside.astype(np.uint8))
        mask.CopyInformation(image)
        gtv = mrml.mask_to_segment(mask, segmentation, "GTV", volume)
        empty = segmentation.GetSegmentation().AddEmptySegment("", "Empty")
        return volume, segmentation, [gtv, empty]

    def test_TwoSegmentsOneEmpty(self):
        import importlib.util
        import math

        from rtresponse import mrml

        self.assertIsNotNone(importlib.util.find_spec("radiomics"), "PyRadiomics (SlicerRadiomics extension) is needed")
        self.delayDisplay("Extracting features of a sphere and an empty segment")
        volume, segmentation, segmentIds = self.makeScene()
        logic = TumorFeaturesLogic()
        table = logic.run(volume, segmentation, segmentIds, "ct-tanaka")
        self.assertTrue(slicer.mrmlScene.IsNodePresent(table))
        self.assertEqual(table.GetName(), "TumorFeaturesTestImage features (ct-tanaka)")
        self.assertEqual(table.GetNumberOfRows(), 2)
        frame = mrml.table_node_to_dataframe(table)
        self.assertEqual(list(frame.index), ["GTV", "Empty"])
        self.assertEqual(frame.loc["GTV", "status"], STATUS_OK)
        self.assertIn("mask is empty", frame.loc["Empty", "status"])
        self.assertEqual(list(logic.failedSegments(table)), ["Empty"])
        sphere = 4.0 / 3.0 * math.pi * 8 ** 3 * 2.0  # mm³
        self.assertAlmostEqual(frame.loc["GTV", "original_shape_MeshVolume"] / sphere, 1.0, delta=0.15)
        self.assertGreater(frame.loc["GTV", "original_firstorder_Mean"], 20.0)  # inside the bright sphere
        self.delayDisplay("Test passed")

    def test_Cancel(self):
        from rtresponse.features import handcrafted

        self.delayDisplay("Cancelling a run")
        volume, segmentation, segmentIds = self.makeScene()
        tablesBefore = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode")
        with self.assertRaises(handcrafted.Cancelled):
            TumorFeaturesLogic().run(volume, segmentation, segmentIds, "pyradiomics-default", shouldCancel=lambda: True)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode"), tablesBefore)
        self.delayDisplay("Test passed")

    def test_DeepFeaturesRandomWeights(self):
        import importlib.util

        import numpy as np
        from rtresponse import mrml
        from rtresponse.features import deep2d
        from rtresponse.settings import Settings

        self.assertIsNotNone(importlib.util.find_spec("torch"), "PyTorch (PyTorch extension) is needed")
        self.delayDisplay("Deep features and Grad-CAM (random ResNet-18) of a sphere and an empty segment")
        volume, segmentation, segmentIds = self.makeScene()
        settings = Settings(device="cpu", weights_folder=slicer.app.temporaryPath)  # not the user's settings
        logic = TumorFeaturesLogic()
        table = logic.runDeep(volume, segmentation, segmentIds, "resnet18", None, settings)
        self.assertEqual(table.GetName(), "TumorFeaturesTestImage deep features resnet18 (random)")
        frame = mrml.table_node_to_dataframe(table)
        self.assertEqual(list(frame.index), ["GTV", "Empty"])
        self.assertEqual(list(frame.columns), deep2d.feature_names("resnet18") + ["status"])
        self.assertEqual(frame.loc["GTV", "status"], STATUS_OK)
        self.assertNotEqual(frame.loc["Empty", "status"], STATUS_OK)
        self.assertTrue(np.isfinite(frame.loc["GTV", deep2d.feature_names("resnet18")].astype(float)).all())
        self.assertEqual(list(logic.failedSegments(table)), ["Empty"])

        heat = logic.showActivationMap(volume, segmentation, segmentIds[0], "resnet18", None, settings)
        self.assertEqual(heat.GetImageData().GetDimensions(), volume.GetImageData().GetDimensions())
        for heatValue, ctValue in zip(heat.GetSpacing() + heat.GetOrigin(), volume.GetSpacing() + volume.GetOrigin()):
            self.assertAlmostEqual(heatValue, ctValue, places=5)
        values = slicer.util.arrayFromVolume(heat)
        self.assertGreaterEqual(values.min(), 0.0)
        self.assertLessEqual(values.max(), 1.0)
        self.assertLessEqual(len(np.unique(np.nonzero(values)[0])), 1)  # the map is on one (axial) slice
        self.delayDisplay("Test passed")
