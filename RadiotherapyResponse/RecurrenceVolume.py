"""Recurrence Volume module: where a head and neck tumour will relapse, from the pre-treatment FDG-PET/CT and the GTV
(Kutnár et al.): a 3D U-Net's relapse probability map over the CT, a dose-painting segment thresholded from it, the
SUVmax-threshold and GTV baselines and, given the observed relapse, a metrics table.

A thin widget over ``rtresponse.recurrence`` (imported lazily inside functions so that loading this module is
instant and never installs anything).
"""

import logging
import os
import re
from typing import Annotated

import vtk

import slicer
from RadiotherapyResponseLib.slicerutils import hubSettings, showTable
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

DEPENDENCY_GROUPS = ["core"]  # the baselines and the metrics table (pandas)
DEEP_DEPENDENCY_GROUPS = ["deep"]  # only when a model is given (PyTorch, MONAI)
RUN_STEPS = 2  # model loaded, prediction made
# Node attributes: outputs are recognised (never guessed as inputs) and the applied threshold survives a scene save
OUTPUT_ATTRIBUTE = "RecurrenceVolume.output"
THRESHOLD_ATTRIBUTE = "RecurrenceVolume.threshold"
DEFAULT_FRACTION_PERCENT = 38.0  # rtresponse.recurrence.PAPER_FRACTION in percent (checked by the self-test)
RUN_TIP = "Predict the relapse volume (with a model) and make the SUVmax-threshold and GTV baseline segments."


class Cancelled(Exception):
    """The user cancelled the run before the prediction started; nothing was added to the scene."""


class RecurrenceVolume(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Recurrence Volume"
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse", "Segmentations"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = """
Predicts where a tumour will relapse after radiotherapy from the pre-treatment CT, FDG-PET and GTV. Pick the volumes
and segments, optionally a trained model file, and press Run. A model gives a relapse probability map (shown over the
CT) and a "Predicted relapse" segment: the map at or above the probability threshold, which can be moved afterwards
for dose painting. Every run also makes the SUVmax-threshold (SUV at least a fraction of the GTV's SUVmax, brain
left out) and GTV baseline segments and, when the observed relapse segment is given, a table of Dice, recall,
precision, volume and points of origin per method. Without a model only the baselines are made.
The compute device is the Radiotherapy Response module's setting.
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Implements the recurrence-volume prediction of Kutnár et al. (3D U-Net on FDG-PET/CT, SUVmax-threshold and GTV
baselines). Built on MONAI and PyTorch.
"""


@parameterNodeWrapper
class RecurrenceVolumeParameterNode:
    """Module state, saved with the scene.

    ctVolume, petVolume: the images. gtvSegmentation/gtvSegmentId: the GTV (required);
    brainSegmentation/brainSegmentId: left out of the SUVmax baseline (optional); relapseSegmentation/relapseSegmentId:
    the observed relapse, for the metrics table (optional). modelPath: a recurrence model file (empty: baselines
    only). suvmaxFractionPercent: the SUVmax-threshold baseline's fraction in percent. threshold: the probability
    at or above which a voxel is in the predicted relapse. outputProbability, outputSegmentation, outputMetrics,
    predictedSegmentId: the latest run's outputs (the threshold slider redraws predictedSegmentId).
    """

    ctVolume: vtkMRMLScalarVolumeNode
    petVolume: vtkMRMLScalarVolumeNode
    gtvSegmentation: vtkMRMLSegmentationNode
    gtvSegmentId: str = ""
    brainSegmentation: vtkMRMLSegmentationNode
    brainSegmentId: str = ""
    relapseSegmentation: vtkMRMLSegmentationNode
    relapseSegmentId: str = ""
    modelPath: str = ""
    suvmaxFractionPercent: Annotated[float, WithinRange(1.0, 100.0)] = DEFAULT_FRACTION_PERCENT
    threshold: Annotated[float, WithinRange(0.01, 0.99)] = 0.5
    outputProbability: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    outputMetrics: vtkMRMLTableNode
    predictedSegmentId: str = ""


class RecurrenceVolumeWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._segmentInputs = []  # (segment selector, segmentation parameter, segment id parameter)
        self._lastProblem = None  # the input problem shown in the status label
        self._run = None  # RadiotherapyResponse.CancellableRun, made in setup()

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RecurrenceVolume.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = RecurrenceVolumeLogic()
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.progressBar.hide()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # Bound through SlicerParameterName in the .ui: the volumes and the two sliders. Slicer cannot bind a
        # segment selector (segmentation node + segment id) nor a str to a ctkPathLineEdit: those are synchronised here.
        self._segmentInputs = [(self.ui.gtvSegmentSelector, "gtvSegmentation", "gtvSegmentId"),
                               (self.ui.brainSegmentSelector, "brainSegmentation", "brainSegmentId"),
                               (self.ui.relapseSegmentSelector, "relapseSegmentation", "relapseSegmentId")]
        for selector, nodeParameter, idParameter in self._segmentInputs:
            selector.connect("currentNodeChanged(vtkMRMLNode*)",
                             lambda node, name=nodeParameter: self.onSegmentInputChanged(name, node))
            selector.connect("currentSegmentChanged(QString)",
                             lambda segmentId, name=idParameter: self.onSegmentInputChanged(name, segmentId))
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelPathChanged)
        # The slider does not track (valueChanged only on release): each value re-thresholds the whole CT grid
        self.ui.thresholdSliderWidget.connect("valueChanged(double)", self.onThresholdChanged)
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        import RadiotherapyResponse

        # The prediction itself cannot be interrupted (predict_in_scene has no cancel hook): Cancel only takes
        # effect while the model loads, before the prediction starts.
        self._run = RadiotherapyResponse.CancellableRun(
            self.ui.cancelButton, self.ui.progressBar, self.ui.statusLabel,
            [self.ui.inputsCollapsibleButton,
             self.ui.modelCollapsibleButton,
             self.ui.outputsCollapsibleButton],
            progressText="{done} of {total} step(s) done. Predicting: this can take a while and cannot be cancelled.",
            cancelText="Cancelling before the prediction starts (a prediction under way runs to the end)...",
            onChange=self.updateGUI)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        self.logic.guessInputs(self._parameterNode)  # save the user a few clicks; keeps what is already chosen

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

    # --- keeping the widgets and the parameter node in step

    def updateGUI(self, *unused):
        """Follow the parameter node: segment selectors, model path, device, Run button."""
        import RadiotherapyResponse

        p = self._parameterNode
        if p:
            for selector, nodeParameter, idParameter in self._segmentInputs:
                RadiotherapyResponse.showSegmentInput(p, selector, nodeParameter, idParameter)
            if self.ui.modelPathLineEdit.currentPath != p.modelPath:
                wasBlocked = self.ui.modelPathLineEdit.blockSignals(True)
                self.ui.modelPathLineEdit.currentPath = p.modelPath
                self.ui.modelPathLineEdit.blockSignals(wasBlocked)
        self.ui.deviceLabel.text = self.deviceText()
        self._checkCanApply()

    def onSegmentInputChanged(self, parameter, value):
        if self._parameterNode:
            setattr(self._parameterNode, parameter, value or ("" if parameter.endswith("Id") else None))

    def onModelPathChanged(self, path):
        if self._parameterNode:
            self._parameterNode.modelPath = path

    hubSettings = staticmethod(hubSettings)  # the hub's device, weights folder, workers

    def deviceText(self):
        device = self.hubSettings().device
        if device == "auto":
            return "auto: CUDA when PyTorch sees a GPU, else CPU (Radiotherapy Response settings)"
        return f"{device} (Radiotherapy Response settings)"

    def _checkCanApply(self):
        problem = self.inputProblem()
        self.ui.runButton.enabled = problem is None and not self._running
        self.ui.runButton.toolTip = problem or RUN_TIP
        if problem and not self._running:
            self.ui.statusLabel.text = problem
        elif not self._running and self.ui.statusLabel.text == self._lastProblem:
            self.ui.statusLabel.text = ""
        self._lastProblem = problem

    def inputProblem(self):
        """What keeps Run from starting, in one sentence; None when everything needed is chosen."""
        p = self._parameterNode
        if p is None:
            return "No parameter node."
        if not p.ctVolume:
            return "Select a CT volume."
        if not p.petVolume:
            return "Select a PET volume."
        if p.ctVolume is p.petVolume:
            return "The CT and PET volumes must be different volumes."
        for label, segmentation, segmentId, required in (
                ("GTV", p.gtvSegmentation, p.gtvSegmentId, True),
                ("brain", p.brainSegmentation, p.brainSegmentId, False),
                ("relapse", p.relapseSegmentation, p.relapseSegmentId, False)):
            if segmentation is None:
                if required:
                    return f"Select a segmentation with the {label} segment."
            elif not segmentId or segmentation.GetSegmentation().GetSegment(segmentId) is None:
                return f"Select the {label} segment" + ("." if required else ", or no segmentation.")
        if p.modelPath and not os.path.isfile(p.modelPath):
            return f"Model file not found: {p.modelPath}. Clear it to make only the baselines."
        return None

    @property
    def _running(self):
        return self._run is not None and self._run.running

    # --- run and dose painting

    def onRunButton(self):
        import RadiotherapyResponse

        p = self._parameterNode
        groups = DEPENDENCY_GROUPS + (DEEP_DEPENDENCY_GROUPS if p.modelPath else [])
        if not RadiotherapyResponse.ensureDependencies(groups):
            self.ui.statusLabel.text = ("PyTorch and MONAI are needed to predict with a model: they were not installed."
                                        if p.modelPath else "pandas is needed: it was not installed.")
            return
        self._run.setRunning(True)
        self.ui.progressBar.maximum = RUN_STEPS
        self.ui.statusLabel.text = "Loading the model..." if p.modelPath else "Making the baseline segments..."
        slicer.app.processEvents()
        try:
            with slicer.util.tryWithErrorDisplay("Recurrence prediction failed.", waitCursor=True):
                try:
                    nodes = self.logic.run(
                        p.ctVolume, p.petVolume, p.gtvSegmentation, p.gtvSegmentId, model=p.modelPath or None,
                        device=self.hubSettings().device, threshold=p.threshold,
                        fraction=p.suvmaxFractionPercent / 100.0,
                        brainSegmentation=p.brainSegmentation, brainSegmentId=p.brainSegmentId or None,
                        relapseSegmentation=p.relapseSegmentation, relapseSegmentId=p.relapseSegmentId or None,
                        progress=self._run.progress, shouldCancel=self._run.shouldCancel)
                except Cancelled:
                    self.ui.statusLabel.text = "Cancelled: nothing was added to the scene."
                    return
                except Exception as error:
                    self.ui.statusLabel.text = f"Failed: {error}"
                    raise
                self._keepOutputs(nodes)
                self.logic.showResult(p.ctVolume, nodes)
                self.ui.statusLabel.text = self.summary(nodes)
        finally:
            self._run.setRunning(False)

    def _keepOutputs(self, nodes):
        from rtresponse.recurrence.nodes import PREDICTED

        p = self._parameterNode
        p.outputProbability = nodes.probability
        p.outputSegmentation = nodes.segmentation
        p.outputMetrics = nodes.metrics
        p.predictedSegmentId = nodes.segment_ids.get(PREDICTED, "")

    def currentResult(self):
        """The latest run's outputs as ``RecurrenceNodes``; None without a probability map (or after deletion)."""
        from rtresponse.recurrence.nodes import PREDICTED, RecurrenceNodes

        p = self._parameterNode
        if p is None or not p.outputProbability or not p.outputSegmentation:
            return None
        segmentIds = {}
        if p.predictedSegmentId and p.outputSegmentation.GetSegmentation().GetSegment(p.predictedSegmentId):
            segmentIds[PREDICTED] = p.predictedSegmentId
        return RecurrenceNodes(probability=p.outputProbability, segmentation=p.outputSegmentation,
                               segment_ids=segmentIds, metrics=p.outputMetrics)

    def onThresholdChanged(self, value):
        """Dose painting: redraw the predicted-relapse segment at the new threshold (no new prediction)."""
        if self._running or self._parameterNode is None or not self._parameterNode.outputProbability:
            return
        nodes = self.currentResult()
        if nodes is None or self.logic.appliedThreshold(nodes) == round(value, 2):
            return
        with slicer.util.tryWithErrorDisplay("Failed to apply the probability threshold.", waitCursor=True):
            try:
                self._parameterNode.predictedSegmentId = self.logic.setThreshold(nodes, value)
            except Exception as error:
                self.ui.statusLabel.text = f"Failed: {error}"
                raise
            self.ui.statusLabel.text = (f"Predicted relapse redrawn at p >= {value:.2f}"
                                        + (" (the metrics table is still at the run's threshold)."
                                           if nodes.metrics else "."))

    def summary(self, nodes):
        from rtresponse import mrml

        names = list(mrml.segment_names(nodes.segmentation).values())
        text = f"'{nodes.segmentation.GetName()}': {', '.join(names)}."
        if nodes.probability is None:
            text += " No model: baselines only."
        else:
            text += f" Probability map '{nodes.probability.GetName()}' is shown over the CT."
        if nodes.metrics is not None:
            frame = mrml.table_node_to_dataframe(nodes.metrics)
            dice = ", ".join(f"{method} {value:.2f}" for method, value in frame["dice"].items())
            text += f"\nDice with the relapse: {dice} (table '{nodes.metrics.GetName()}')."
        logging.info(text)
        return text


class RecurrenceVolumeLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points; everything that computes lives in ``rtresponse.recurrence``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return RecurrenceVolumeParameterNode(super().getParameterNode())

    def run(self, ctNode, petNode, gtvSegmentation, gtvSegmentId, model=None, device="auto", threshold=0.5,
            fraction=None, brainSegmentation=None, brainSegmentId=None, relapseSegmentation=None,
            relapseSegmentId=None, box_xyz=None, name=None, progress=None, shouldCancel=None):
        """Relapse prediction and baselines in new nodes; returns ``rtresponse.recurrence.nodes.RecurrenceNodes``.

        ``model``: a recurrence model file, a loaded network, or None for the baselines only (SUVmax threshold at
        ``fraction``, default the paper's 38 %, and the GTV). ``device``: "auto", "cpu" or "cuda" (used only with a
        model). ``threshold``: the probability of the predicted-relapse segment. The brain segment is left out of
        the SUVmax baseline; the relapse segment adds a metrics table. ``box_xyz``: the network's box in voxels
        (default ``rtresponse.recurrence.BOX_XYZ``). ``progress(done, total)`` is called after each step; when
        ``shouldCancel()`` returns True once the model is loaded, :class:`Cancelled` is raised and nothing is made.
        The inputs are only read.
        """
        from rtresponse.errors import InputError
        from rtresponse.recurrence import BOX_XYZ, PAPER_FRACTION, load_model
        from rtresponse.recurrence.nodes import predict_in_scene
        from rtresponse.settings import resolve_device

        for node, what in ((ctNode, "CT volume"), (petNode, "PET volume"), (gtvSegmentation, "GTV segmentation")):
            if node is None:
                raise InputError(f"no {what} selected")
        progress = progress or (lambda done, total: None)
        network = None
        if isinstance(model, (str, os.PathLike)) and os.fspath(model):
            device = resolve_device(device)
            network, _config = load_model(model, device)
        elif model is not None and not isinstance(model, (str, os.PathLike)):
            device = resolve_device(device)
            network = model.to(device)
        progress(1, RUN_STEPS)
        # Last chance to cancel: once started, the prediction runs to the end (it has no cancel hook)
        if shouldCancel is not None and shouldCancel():
            raise Cancelled("cancelled before the prediction started")
        nodes = predict_in_scene(
            ctNode, petNode, gtvSegmentation, gtvSegmentId, network=network,
            device=device if network is not None else "cpu",
            threshold=threshold, fraction=PAPER_FRACTION if fraction is None else fraction,
            brain_segmentation=brainSegmentation if brainSegmentId else None, brain_segment=brainSegmentId or None,
            relapse_segmentation=relapseSegmentation if relapseSegmentId else None,
            relapse_segment=relapseSegmentId or None, box_xyz=BOX_XYZ if box_xyz is None else tuple(box_xyz),
            name=name, scene=ctNode.GetScene() or slicer.mrmlScene)
        for node in (nodes.probability, nodes.segmentation, nodes.metrics):
            if node is not None:
                node.SetAttribute(OUTPUT_ATTRIBUTE, "1")
        if nodes.probability is not None:
            nodes.segmentation.SetAttribute(THRESHOLD_ATTRIBUTE, f"{threshold:.2f}")
        nodes.segmentation.SetAttribute("RecurrenceVolume.model",
                                        os.fspath(model) if isinstance(model, (str, os.PathLike)) and model
                                        else ("network" if network is not None else "none"))
        progress(2, RUN_STEPS)
        return nodes

    def setThreshold(self, nodes, threshold, ctNode=None):
        """Dose painting: replace the predicted-relapse segment of a run's ``nodes`` by the probability map at
        ``threshold`` (0-1, exclusive); returns the new segment's id. ``ctNode`` defaults to the probability map,
        which lies on the CT's grid."""
        from rtresponse.errors import InputError
        from rtresponse.recurrence.nodes import set_threshold

        if nodes.probability is None:
            raise InputError("no probability map: the run had no model")
        segmentId = set_threshold(nodes, ctNode or nodes.probability, float(threshold))
        nodes.segmentation.SetAttribute(THRESHOLD_ATTRIBUTE, f"{float(threshold):.2f}")
        return segmentId

    @staticmethod
    def appliedThreshold(nodes):
        """The threshold of the predicted-relapse segment now in ``nodes.segmentation`` (None when unknown)."""
        value = nodes.segmentation.GetAttribute(THRESHOLD_ATTRIBUTE) if nodes.segmentation else None
        return round(float(value), 2) if value else None

    def showResult(self, ctNode, nodes):
        """Probability map over the CT (half opaque), the segments, and the metrics table in a table view."""
        if nodes.probability is not None:
            slicer.util.setSliceViewerLayers(background=ctNode, foreground=nodes.probability, foregroundOpacity=0.5)
        else:
            slicer.util.setSliceViewerLayers(background=ctNode, foreground=None)  # no map: hide an older one
        display = nodes.segmentation.GetDisplayNode()
        if display is not None:
            display.SetVisibility(True)
        if nodes.metrics is not None:
            self.showTable(nodes.metrics)

    showTable = staticmethod(showTable)

    @staticmethod
    def guessInputs(parameterNode, scene=None):
        """Fill the empty inputs from the scene by name: a PET (PET/SUV), a CT (CT, else any other volume), a GTV
        segment, a brain segment and a relapse/recurrence segment. Outputs of this module are never picked."""
        scene = scene or slicer.mrmlScene
        p = parameterNode
        if p is None:
            return

        def named(node, *words):
            return any(re.search(rf"(^|[^a-z]){word}([^a-z]|$)", node.GetName().lower()) for word in words)

        volumes = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
                   for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
        volumes = [v for v in volumes
                   if not v.IsA("vtkMRMLLabelMapVolumeNode") and not v.GetAttribute(OUTPUT_ATTRIBUTE)]
        if not p.petVolume:
            p.petVolume = next((v for v in volumes if named(v, "pet", "suv")), None)
        if not p.ctVolume:
            others = [v for v in volumes if v is not p.petVolume]
            p.ctVolume = next((v for v in others if named(v, "ct")), others[0] if others else None)
        segmentations = [scene.GetNthNodeByClass(i, "vtkMRMLSegmentationNode")
                         for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))]
        segmentations = [s for s in segmentations if not s.GetAttribute(OUTPUT_ATTRIBUTE)]
        for words, nodeParameter, idParameter in ((("gtv",), "gtvSegmentation", "gtvSegmentId"),
                                                  (("brain",), "brainSegmentation", "brainSegmentId"),
                                                  (("relapse", "recurrence"), "relapseSegmentation",
                                                   "relapseSegmentId")):
            if getattr(p, nodeParameter):
                continue
            for segmentation in segmentations:
                segments = segmentation.GetSegmentation()
                found = next((segments.GetNthSegmentID(i) for i in range(segments.GetNumberOfSegments())
                              if any(w in segments.GetNthSegment(i).GetName().lower() for w in words)), None)
                if found:
                    setattr(p, nodeParameter, segmentation)
                    setattr(p, idParameter, found)
                    break


class RecurrenceVolumeTest(ScriptedLoadableModuleTest):
    CHANNELS = (8, 8, 16, 32, 64, 8)  # a small network: the test checks plumbing, not accuracy
    BOX_XYZ = (48, 64, 32)  # larger than the 40 x 40 x 20 test CT: the box is padded

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PredictionAndDosePainting()
        self.setUp()
        self.test_BaselinesOnlyAndCancel()

    def makeScene(self):
        """CT (40 x 40 x 20 voxels of 1.5 x 1.5 x 3 mm, noise with a brighter GTV), PET on a coarser grid with a hot
        blob near the GTV, and a segmentation with the GTV ("GTVp") and the relapse (PET at least 42 % of its maximum
        in the GTV); returns (ct, pet, segmentation, gtv id, relapse id)."""
        import numpy as np
        import SimpleITK as sitk
        from rtresponse import mrml

        shape = (20, 40, 40)  # z, y, x
        rng = np.random.default_rng(5)
        z, y, x = np.indices(shape)
        centre = np.array(shape) / 2
        gtv = ((z - centre[0]) / 6) ** 2 + ((y - centre[1]) / 9) ** 2 + ((x - centre[2]) / 9) ** 2 <= 1
        hot = centre + [1.0, 2.0, -2.0]
        suv = 1.0 + 9.0 * np.exp(-(((z - hot[0]) / 2.5) ** 2 + ((y - hot[1]) / 4) ** 2 + ((x - hot[2]) / 4) ** 2))
        ctArray = np.where(gtv, 45.0, 20.0) + rng.normal(0, 15, shape)

        def image(array, pixel=np.float32):
            out = sitk.GetImageFromArray(array.astype(pixel))
            out.SetSpacing((1.5, 1.5, 3.0))
            out.SetOrigin((-30.0, 10.0, 5.0))
            return out

        ctImage = image(ctArray, np.int16)
        petImage = sitk.Resample(image(suv), [20, 20, 15], sitk.Transform(), sitk.sitkLinear, (-29.25, 10.75, 6.0),
                                 (3.0, 3.0, 4.0), ctImage.GetDirection(), 0.0, sitk.sitkFloat32)
        relapse = suv >= 0.42 * suv[gtv].max()
        ct = mrml.image_to_volume_node(ctImage, "RecurrenceVolumeTest CT", scene=slicer.mrmlScene)
        pet = mrml.image_to_volume_node(petImage, "RecurrenceVolumeTest PET", scene=slicer.mrmlScene)
        segmentation = mrml.new_segmentation_node("RecurrenceVolumeTest contours", ct, scene=slicer.mrmlScene)
        gtvId = mrml.mask_to_segment(image(gtv, np.uint8), segmentation, "GTVp", ct)
        relapseId = mrml.mask_to_segment(image(relapse, np.uint8), segmentation, "relapse", ct)
        return ct, pet, segmentation, gtvId, relapseId

    def test_PredictionAndDosePainting(self):
        import importlib.util
        import shutil
        import tempfile

        import numpy as np
        import SimpleITK as sitk
        from rtresponse import mrml
        from rtresponse.recurrence import PAPER_FRACTION, make_unet, save_model
        from rtresponse.recurrence.nodes import PREDICTED

        for package in ("torch", "monai"):
            self.assertIsNotNone(importlib.util.find_spec(package), f"{package} is needed (Radiotherapy Response: "
                                                                    "install the optional Python packages)")
        self.delayDisplay("Predicting with a small random network, then moving the threshold")
        logic = RecurrenceVolumeLogic()
        self.assertAlmostEqual(logic.getParameterNode().suvmaxFractionPercent / 100.0, PAPER_FRACTION)
        ct, pet, segmentation, gtvId, relapseId = self.makeScene()
        folder = tempfile.mkdtemp(dir=slicer.app.temporaryPath)
        try:
            path = os.path.join(folder, "recurrence-test.pt")
            save_model(path, make_unet(self.CHANNELS), {"channels": list(self.CHANNELS)})
            steps = []
            nodes = logic.run(ct, pet, segmentation, gtvId, model=path, device="cpu", threshold=0.5,
                              relapseSegmentation=segmentation, relapseSegmentId=relapseId, box_xyz=self.BOX_XYZ,
                              progress=lambda done, total: steps.append((done, total)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.assertEqual(steps[-1], (RUN_STEPS, RUN_STEPS))
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 2)  # the inputs are only read

        probability = nodes.probability
        self.assertTrue(slicer.mrmlScene.IsNodePresent(probability))
        self.assertEqual(probability.GetImageData().GetDimensions(), ct.GetImageData().GetDimensions())
        geometry = zip(probability.GetSpacing() + probability.GetOrigin(), ct.GetSpacing() + ct.GetOrigin())
        for value, expected in geometry:
            self.assertAlmostEqual(value, expected, places=5)
        values = slicer.util.arrayFromVolume(probability)
        self.assertGreaterEqual(float(values.min()), 0.0)
        self.assertLessEqual(float(values.max()), 1.0)

        self.assertEqual(nodes.segmentation.GetSegmentation().GetNumberOfSegments(), 3)  # predicted, SUVmax, GTV
        self.assertEqual(nodes.metrics.GetNumberOfRows(), 3)
        self.assertEqual(list(mrml.table_node_to_dataframe(nodes.metrics).index), ["CNN", "SUVmax 38%", "GTV"])
        self.assertEqual(logic.appliedThreshold(nodes), 0.5)

        self.delayDisplay("Dose painting: threshold 0.2")
        before = nodes.segment_ids[PREDICTED]
        after = logic.setThreshold(nodes, 0.2)
        self.assertNotEqual(after, before)
        self.assertEqual(nodes.segment_ids[PREDICTED], after)
        self.assertIsNone(nodes.segmentation.GetSegmentation().GetSegment(before))
        self.assertIn("0.20", nodes.segmentation.GetSegmentation().GetSegment(after).GetName())
        self.assertEqual(nodes.segmentation.GetSegmentation().GetNumberOfSegments(), 3)
        self.assertEqual(logic.appliedThreshold(nodes), 0.2)
        predicted = slicer.util.arrayFromVolume(probability) >= 0.2
        mask = mrml.segment_to_mask(nodes.segmentation, after, ct)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mask) != 0, predicted)
        self.delayDisplay("Test passed")

    def test_BaselinesOnlyAndCancel(self):
        from rtresponse import mrml

        self.delayDisplay("Baselines without a model, and a cancelled run")
        ct, pet, segmentation, gtvId, relapseId = self.makeScene()
        logic = RecurrenceVolumeLogic()
        nodes = logic.run(ct, pet, segmentation, gtvId, model=None, fraction=0.5)
        self.assertIsNone(nodes.probability)
        self.assertIsNone(nodes.metrics)
        self.assertEqual(sorted(mrml.segment_names(nodes.segmentation).values()), ["GTV (baseline)", "SUVmax 50%"])

        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(Cancelled):
            logic.run(ct, pet, segmentation, gtvId, relapseSegmentation=segmentation, relapseSegmentId=relapseId,
                      shouldCancel=lambda: True)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)
        self.delayDisplay("Test passed")
