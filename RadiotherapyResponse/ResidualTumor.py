"""Residual Tumor module: will tumour remain after chemoradiotherapy, and which regimen to choose (nasopharyngeal
carcinoma): from the pre-treatment T1-enhanced MR, two residual-tumour CNNs (one trained on CCRT patients, one on
IC+CCRT patients) give the probability of residual tumour under each regimen, per slice and per patient; the lightest
regimen predicted to clear the tumour is recommended (CCRT, IC+CCRT, or IBT when neither does), with its reasoning
and a Grad-CAM map per regimen. The tumour is an existing segment, or is segmented by a segmenter model.

A thin widget over ``rtresponse.residual`` and ``rtresponse.recommendation`` (imported lazily inside functions so
that loading this module is instant and never installs anything).
"""

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Annotated, Optional

import vtk

import slicer
from RadiotherapyResponseLib.slicerutils import hubSettings, showTable
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

DEPENDENCY_GROUPS = ["core", "deep"]  # pandas; PyTorch, torchvision, timm, MONAI (the CNNs and the segmenter)
RUN_STEPS = 3  # models loaded, prediction made, nodes made
REGIMENS = ("CCRT", "IC+CCRT")  # rtresponse.recommendation.REGIMENS (checked by the self-test)
RECOMMENDATIONS = ("CCRT", "IC+CCRT", "IBT")
# Node attributes: outputs are recognised (never guessed as inputs); the recommendation survives a scene save
OUTPUT_ATTRIBUTE = "ResidualTumor.output"
RECOMMENDATION_ATTRIBUTE = "ResidualTumor.recommendation"
REASONING_ATTRIBUTE = "ResidualTumor.reasoning"
GRADCAM_COLOR_NODE_ID = "vtkMRMLColorTableNodeRainbow"  # a built-in Slicer colour table
RUN_TIP = "Predict residual tumour under CCRT and IC+CCRT and recommend a regimen."


class Cancelled(Exception):
    """The user cancelled the run; nothing was added to the scene."""


@dataclass
class ResidualNodes:
    """A run's outputs: the table (one row per tumour slice and a patient row), the tumour segmentation (only when
    segmented automatically), one Grad-CAM volume per regimen (empty without Grad-CAM), and the recommendation."""

    table: object
    recommendation: str
    reasoning: str
    probabilities: dict
    residual: dict
    segmentation: Optional[object] = None
    segmentId: str = ""
    gradcam: dict = field(default_factory=dict)


class ResidualTumor(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Residual Tumor"
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse", "Segmentations"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = """
Predicts, from the pre-treatment T1-enhanced MR, whether tumour will remain after concurrent chemoradiotherapy (CCRT)
and after induction chemotherapy plus CCRT (IC+CCRT), and recommends the lightest regimen predicted to clear it
(IBT, an individual-based more intensive treatment, when neither is). Pick the MR, the tumour segment (or a segmenter
model file to segment it automatically) and the two regimen model files, then press Run. Results: a table with the
residual probability under each regimen per tumour slice and for the patient, the recommendation with its reasoning,
a Grad-CAM map per regimen shown over the MR, and the tumour segmentation when it was segmented automatically.
The compute device is the Radiotherapy Response module's setting, unless Use CPU is checked.
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Implements the residual-tumour prediction and treatment recommendation for nasopharyngeal carcinoma (2D tumour
segmentation, CNN residual-tumour classifiers per regimen, Grad-CAM). Built on PyTorch, timm and MONAI.
"""


@parameterNodeWrapper
class ResidualTumorParameterNode:
    """Module state, saved with the scene.

    mrVolume: the T1-enhanced MR. autoSegment: segment the tumour with segmenterPath instead of using
    tumorSegmentation/tumorSegmentId. ccrtModelPath, icModelPath: the two regimen classifiers. forceCpu: run on the
    CPU whatever the hub's device. gradcam: make the Grad-CAM maps. overlayRegimen: the regimen whose Grad-CAM map is
    shown over the MR. outputTable, outputSegmentation, outputGradcamCCRT, outputGradcamIC: the latest run's outputs.
    """

    mrVolume: vtkMRMLScalarVolumeNode
    autoSegment: bool = False
    tumorSegmentation: vtkMRMLSegmentationNode
    tumorSegmentId: str = ""
    segmenterPath: str = ""
    ccrtModelPath: str = ""
    icModelPath: str = ""
    forceCpu: bool = False
    gradcam: bool = True
    overlayRegimen: Annotated[str, Choice(list(REGIMENS))] = "CCRT"
    outputTable: vtkMRMLTableNode
    outputSegmentation: vtkMRMLSegmentationNode
    outputGradcamCCRT: vtkMRMLScalarVolumeNode
    outputGradcamIC: vtkMRMLScalarVolumeNode


class ResidualTumorWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._pathInputs = []  # (ctkPathLineEdit, str parameter)
        self._lastProblem = None  # the input problem shown in the status label
        self._run = None  # RadiotherapyResponse.CancellableRun, made in setup()

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ResidualTumor.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = ResidualTumorLogic()
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.progressBar.hide()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # Bound through SlicerParameterName in the .ui: the MR, the check boxes and the overlay combo box. Slicer
        # cannot bind a segment selector nor a str to a ctkPathLineEdit: those are synchronised here.
        self.ui.tumorSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                             lambda node: self.onInputChanged("tumorSegmentation", node))
        self.ui.tumorSegmentSelector.connect("currentSegmentChanged(QString)",
                                             lambda segmentId: self.onInputChanged("tumorSegmentId", segmentId))
        self._pathInputs = [(self.ui.segmenterPathLineEdit, "segmenterPath"),
                            (self.ui.ccrtModelPathLineEdit, "ccrtModelPath"),
                            (self.ui.icModelPathLineEdit, "icModelPath")]
        for lineEdit, parameter in self._pathInputs:
            lineEdit.connect("currentPathChanged(QString)",
                             lambda path, name=parameter: self.onInputChanged(name, path))
        self.ui.overlayComboBox.connect("currentIndexChanged(int)", self.onOverlayChanged)
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        import RadiotherapyResponse

        # Cancel takes effect between the prediction's stages (segmentation, each regimen's model, each Grad-CAM)
        self._run = RadiotherapyResponse.CancellableRun(
            self.ui.cancelButton, self.ui.progressBar, self.ui.statusLabel,
            [self.ui.inputsCollapsibleButton, self.ui.modelsCollapsibleButton, self.ui.outputsCollapsibleButton],
            progressText="{done} of {total} step(s) done. Predicting: this can take a while.",
            cancelText="Cancelling after the current stage of the prediction...",
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
        """Follow the parameter node: segment selector, model paths, device, latest recommendation, Run button."""
        import RadiotherapyResponse

        p = self._parameterNode
        if p:
            RadiotherapyResponse.showSegmentInput(p, self.ui.tumorSegmentSelector, "tumorSegmentation",
                                                  "tumorSegmentId")
            for lineEdit, parameter in self._pathInputs:
                if lineEdit.currentPath != getattr(p, parameter):
                    wasBlocked = lineEdit.blockSignals(True)
                    lineEdit.currentPath = getattr(p, parameter)
                    lineEdit.blockSignals(wasBlocked)
            self.ui.tumorSegmentSelector.enabled = not p.autoSegment
            self.ui.segmenterPathLineEdit.enabled = p.autoSegment
            self.ui.recommendationLabel.text = self.recommendationText(p.outputTable)
        self.ui.deviceLabel.text = self.deviceText()
        self._checkCanApply()

    def onInputChanged(self, parameter, value):
        if self._parameterNode:
            empty = None if parameter == "tumorSegmentation" else ""
            setattr(self._parameterNode, parameter, value or empty)

    hubSettings = staticmethod(hubSettings)  # the hub's device, weights folder, workers

    def device(self):
        """"cpu" when Use CPU is checked, else the Radiotherapy Response device setting (auto, cpu or cuda)."""
        p = self._parameterNode
        return "cpu" if p is not None and p.forceCpu else self.hubSettings().device

    def deviceText(self):
        if self._parameterNode is not None and self._parameterNode.forceCpu:
            return "CPU (Use CPU is checked)"
        device = self.hubSettings().device
        if device == "auto":
            return "auto: CUDA when PyTorch sees a GPU, else CPU (Radiotherapy Response settings)"
        return f"{device} (Radiotherapy Response settings)"

    @staticmethod
    def recommendationText(tableNode):
        """The recommendation and its reasoning stored on a run's table node ("" without one)."""
        if tableNode is None or not tableNode.GetAttribute(RECOMMENDATION_ATTRIBUTE):
            return ""
        return (f"Recommendation: {tableNode.GetAttribute(RECOMMENDATION_ATTRIBUTE)}\n"
                f"{tableNode.GetAttribute(REASONING_ATTRIBUTE) or ''}")

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
        if not p.mrVolume:
            return "Select the T1-enhanced MR volume."
        if p.autoSegment:
            if not p.segmenterPath:
                return "Select a segmenter model file, or uncheck Segment automatically."
            if not os.path.isfile(p.segmenterPath):
                return f"Segmenter file not found: {p.segmenterPath}."
        else:
            if p.tumorSegmentation is None:
                return "Select a segmentation with the tumour segment, or check Segment automatically."
            if not p.tumorSegmentId or p.tumorSegmentation.GetSegmentation().GetSegment(p.tumorSegmentId) is None:
                return "Select the tumour segment."
        for label, path in (("CCRT", p.ccrtModelPath), ("IC+CCRT", p.icModelPath)):
            if not path:
                return f"Select the {label} model file."
            if not os.path.isfile(path):
                return f"{label} model file not found: {path}."
        if os.path.abspath(p.ccrtModelPath) == os.path.abspath(p.icModelPath):
            return "The CCRT and IC+CCRT models must be different files."
        return None

    @property
    def _running(self):
        return self._run is not None and self._run.running

    # --- run and results

    def onRunButton(self):
        import RadiotherapyResponse

        p = self._parameterNode
        if not RadiotherapyResponse.ensureDependencies(DEPENDENCY_GROUPS):
            self.ui.statusLabel.text = "PyTorch, timm and MONAI are needed to predict: they were not installed."
            return
        self._run.setRunning(True)
        self.ui.progressBar.maximum = RUN_STEPS
        self.ui.statusLabel.text = "Loading the models..."
        slicer.app.processEvents()
        try:
            with slicer.util.tryWithErrorDisplay("Residual tumour prediction failed.", waitCursor=True):
                try:
                    nodes = self.logic.run(
                        p.mrVolume, p.ccrtModelPath, p.icModelPath,
                        tumorSegmentation=None if p.autoSegment else p.tumorSegmentation,
                        tumorSegmentId=None if p.autoSegment else p.tumorSegmentId,
                        segmenter=p.segmenterPath if p.autoSegment else None,
                        device=self.device(), gradcam=p.gradcam,
                        progress=self._run.progress, shouldCancel=self._run.shouldCancel)
                except Cancelled:
                    self.ui.statusLabel.text = "Cancelled: nothing was added to the scene."
                    return
                except Exception as error:
                    self.ui.statusLabel.text = f"Failed: {error}"
                    raise
                p.outputTable = nodes.table
                p.outputSegmentation = nodes.segmentation
                p.outputGradcamCCRT = nodes.gradcam.get("CCRT")
                p.outputGradcamIC = nodes.gradcam.get("IC+CCRT")
                self.logic.showResult(p.mrVolume, nodes, p.overlayRegimen)
                self.ui.recommendationLabel.text = self.recommendationText(nodes.table)
                self.ui.statusLabel.text = self.summary(nodes)
        finally:
            self._run.setRunning(False)

    def onOverlayChanged(self, *unused):
        """Show the chosen regimen's Grad-CAM map over the MR (when the latest run made one)."""
        p = self._parameterNode
        if p is None or self._running or not p.mrVolume:
            return
        # The combo box's text: this slot may run before the parameter node follows the combo box
        regimen = self.ui.overlayComboBox.currentText or p.overlayRegimen
        overlay = p.outputGradcamCCRT if regimen == "CCRT" else p.outputGradcamIC
        if overlay is not None:
            slicer.util.setSliceViewerLayers(background=p.mrVolume, foreground=overlay, foregroundOpacity=0.5)

    @staticmethod
    def summary(nodes):
        probabilities = ", ".join(f"{regimen} {nodes.probabilities[regimen]:.2f}" for regimen in REGIMENS)
        text = f"Residual probability: {probabilities} (table '{nodes.table.GetName()}')."
        if nodes.segmentation is not None:
            text += f" Tumour segmented automatically: '{nodes.segmentation.GetName()}'."
        if nodes.gradcam:
            text += " Grad-CAM maps: " + ", ".join(f"'{n.GetName()}'" for n in nodes.gradcam.values()) + "."
        logging.info(text)
        return text


class ResidualTumorLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points; everything that computes lives in ``rtresponse.residual``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return ResidualTumorParameterNode(super().getParameterNode())

    def run(self, mrNode, ccrtModel, icModel, tumorSegmentation=None, tumorSegmentId=None, segmenter=None,
            device="auto", gradcam=True, name=None, progress=None, shouldCancel=None):
        """Residual tumour under each regimen and the recommendation, in new nodes; returns :class:`ResidualNodes`.

        ``ccrtModel``, ``icModel``: classifier files (or loaded ``rtresponse.residual.classification.Classifier``).
        The tumour is ``tumorSegmentId`` of ``tumorSegmentation``, or, without them, segmented with ``segmenter`` (a
        segmenter file or a loaded ``Segmenter``; the mask then becomes a new segmentation node). ``device``: "auto",
        "cpu" or "cuda". ``gradcam``: make a Grad-CAM volume per regimen on the MR grid. ``progress(done, total)`` is
        called after each step; when ``shouldCancel()`` returns True (asked once the models are loaded and between
        the prediction's stages), :class:`Cancelled` is raised and nothing is made. The inputs are only read.
        """
        from rtresponse import mrml
        from rtresponse.errors import Cancelled as PredictionCancelled
        from rtresponse.errors import InputError
        from rtresponse.residual.classification import load_classifier
        from rtresponse.residual.predict import predict_patient
        from rtresponse.residual.segmentation import load_segmenter
        from rtresponse.settings import resolve_device

        if mrNode is None:
            raise InputError("no MR volume selected")
        useSegment = tumorSegmentation is not None and bool(tumorSegmentId)
        if not useSegment and segmenter is None:
            raise InputError("no tumour: select a tumour segment or a segmenter model")
        progress = progress or (lambda done, total: None)
        name = name or mrNode.GetName()
        scene = mrNode.GetScene() or slicer.mrmlScene

        # Read the inputs and load the models before anything is added to the scene
        image = mrml.volume_node_to_image(mrNode)
        mask = mrml.segment_to_mask(tumorSegmentation, tumorSegmentId, mrNode) if useSegment else None
        device = resolve_device(device)
        models = []
        for model, what in ((ccrtModel, "CCRT"), (icModel, "IC+CCRT")):
            if model is None or (isinstance(model, (str, os.PathLike)) and not os.fspath(model)):
                raise InputError(f"no {what} model given")
            models.append(load_classifier(model, device) if isinstance(model, (str, os.PathLike)) else model)
        loadedSegmenter = None
        if not useSegment:
            loadedSegmenter = (load_segmenter(segmenter, device) if isinstance(segmenter, (str, os.PathLike))
                               else segmenter)
        progress(1, RUN_STEPS)
        if shouldCancel is not None and shouldCancel():
            raise Cancelled("cancelled before the prediction started")
        try:
            prediction = predict_patient(image, mask, models[0], models[1], segmenter=loadedSegmenter,
                                         patient_id=name, device=device, gradcam=gradcam, should_cancel=shouldCancel)
        except PredictionCancelled as error:  # between the prediction's stages; nothing was made yet
            raise Cancelled(str(error)) from error
        progress(2, RUN_STEPS)

        table = mrml.dataframe_to_table_node(self.resultFrame(prediction), f"{name} residual tumour", scene=scene)
        table.SetAttribute(RECOMMENDATION_ATTRIBUTE, prediction.recommendation)
        table.SetAttribute(REASONING_ATTRIBUTE, prediction.reasoning)
        nodes = ResidualNodes(table=table, recommendation=prediction.recommendation, reasoning=prediction.reasoning,
                              probabilities=dict(prediction.probabilities), residual=dict(prediction.residual))
        if not useSegment:
            nodes.segmentation = mrml.new_segmentation_node(f"{name} tumour (segmented)", mrNode, scene=scene)
            nodes.segmentId = mrml.mask_to_segment(prediction.mask, nodes.segmentation, "tumour", mrNode,
                                                   (0.85, 0.2, 0.2))
        for regimen, cam in prediction.gradcam.items():
            node = mrml.image_to_volume_node(cam, f"{name} Grad-CAM {regimen}", scene=scene)
            node.CreateDefaultDisplayNodes()
            display = node.GetDisplayNode()
            if display is not None:
                display.SetAndObserveColorNodeID(GRADCAM_COLOR_NODE_ID)
                display.AutoWindowLevelOff()
                display.SetWindowLevelMinMax(0.0, 1.0)
            nodes.gradcam[regimen] = node
        for node in [nodes.table, nodes.segmentation, *nodes.gradcam.values()]:
            if node is not None:
                node.SetAttribute(OUTPUT_ATTRIBUTE, "1")
        progress(3, RUN_STEPS)
        return nodes

    @staticmethod
    def resultFrame(prediction):
        """One row per tumour slice ("slice <k>") and a "patient" row: residual probability under each regimen, the
        residual call and the recommendation (patient row only), and each slice's crop box and tumour area."""
        import pandas as pd
        from rtresponse.residual.predict import COLUMN

        slices = prediction.slices.copy()
        labels = [f"slice {int(k)}" for k in slices["slice_index"]]
        frame = pd.DataFrame({
            "slice_index": slices["slice_index"].astype(float).tolist(),
            COLUMN["CCRT"]: slices[COLUMN["CCRT"]].astype(float).tolist(),
            COLUMN["IC+CCRT"]: slices[COLUMN["IC+CCRT"]].astype(float).tolist(),
            "residual_CCRT": [""] * len(slices),
            "residual_IC_CCRT": [""] * len(slices),
            "recommendation": [""] * len(slices),
            "area_mm2": slices["area_mm2"].astype(float).tolist(),
        }, index=pd.Index(labels, name="row"))
        patient = pd.DataFrame({
            "slice_index": [float("nan")],
            COLUMN["CCRT"]: [float(prediction.probabilities["CCRT"])],
            COLUMN["IC+CCRT"]: [float(prediction.probabilities["IC+CCRT"])],
            "residual_CCRT": ["residual" if prediction.residual["CCRT"] else "no residual"],
            "residual_IC_CCRT": ["residual" if prediction.residual["IC+CCRT"] else "no residual"],
            "recommendation": [prediction.recommendation],
            "area_mm2": [float(slices["area_mm2"].sum())],
        }, index=pd.Index(["patient"], name="row"))
        return pd.concat([frame, patient])

    def showResult(self, mrNode, nodes, overlayRegimen="CCRT"):
        """The chosen regimen's Grad-CAM map over the MR (half opaque), the segmentation, the table in a table view."""
        overlay = nodes.gradcam.get(overlayRegimen) or next(iter(nodes.gradcam.values()), None)
        slicer.util.setSliceViewerLayers(background=mrNode, foreground=overlay, foregroundOpacity=0.5)
        if nodes.segmentation is not None:
            display = nodes.segmentation.GetDisplayNode()
            if display is not None:
                display.SetVisibility(True)
        self.showTable(nodes.table)

    showTable = staticmethod(showTable)

    @staticmethod
    def guessInputs(parameterNode, scene=None):
        """Fill the empty inputs from the scene by name: the MR (T1, else MR, else any volume) and a tumour segment
        (GTV or tumour). Outputs of this module are never picked."""
        scene = scene or slicer.mrmlScene
        p = parameterNode
        if p is None:
            return

        def named(node, *words):
            return any(re.search(rf"(^|[^a-z]){word}", node.GetName().lower()) for word in words)

        volumes = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
                   for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
        volumes = [v for v in volumes
                   if not v.IsA("vtkMRMLLabelMapVolumeNode") and not v.GetAttribute(OUTPUT_ATTRIBUTE)]
        if not p.mrVolume:
            p.mrVolume = next((v for v in volumes if named(v, "t1")),
                              next((v for v in volumes if named(v, "mr")), volumes[0] if volumes else None))
        if p.tumorSegmentation:
            return
        segmentations = [scene.GetNthNodeByClass(i, "vtkMRMLSegmentationNode")
                         for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))]
        for segmentation in (s for s in segmentations if not s.GetAttribute(OUTPUT_ATTRIBUTE)):
            segments = segmentation.GetSegmentation()
            found = next((segments.GetNthSegmentID(i) for i in range(segments.GetNumberOfSegments())
                          if any(w in segments.GetNthSegment(i).GetName().lower() for w in ("gtv", "tumour", "tumor"))),
                         None)
            if found:
                p.tumorSegmentation = segmentation
                p.tumorSegmentId = found
                break


class ResidualTumorTest(ScriptedLoadableModuleTest):
    # Small models: the test checks plumbing, not accuracy (SqueezeNet on 32-pixel crops, a tiny U-Net)
    SMALL = dict(network="squeezenet", weights=None, input_size=32, epochs=1, learning_rate=0.01, batch_size=32)
    UNET_FEATURES = (4, 4, 8, 8, 16, 4)

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ResidualWithSegment()
        self.setUp()
        self.test_AutoSegmentAndCancel()

    def makeModels(self, folder):
        """A synthetic 4-patient cohort, the first patient's T1 MR and GTVp in the scene, and two classifiers trained
        one epoch from random weights saved in ``folder``; returns (mr, segmentation, gtv id, ccrt path, ic path)."""
        from rtresponse import mrml
        from rtresponse.cohort import load_manifest
        from rtresponse.residual.classification import ClassifierConfig, save_classifier, train_classifier
        from rtresponse.residual.slices import rectangular_crops
        from rtresponse.sampledata.synthetic import write_cohort

        cohort = load_manifest(write_cohort(os.path.join(folder, "cohort"), n_patients=4, size=(48, 48, 16)))
        pids = list(cohort.patient_ids)
        paths = []
        for offset, regimen in enumerate(REGIMENS):
            config = ClassifierConfig(**self.SMALL, regimen=regimen)
            samples = []
            for pid in pids:
                image = cohort.read_image(pid, "T1")
                samples += rectangular_crops(image, cohort.read_mask(pid, "GTVp", image="T1", reference=image), pid,
                                             **config.crop_options())
            labels = {pid: (i + offset) % 2 for i, pid in enumerate(pids)}  # plumbing only: any two classes
            paths.append(os.path.join(folder, f"{regimen}.pt"))
            save_classifier(paths[-1], train_classifier(samples, labels, config))
        nodes = mrml.load_patient(cohort, pids[0], scene=slicer.mrmlScene, images=["T1"], masks=["GTVp"])
        segmentation = nodes["segmentation"]
        gtvId = segmentation.GetSegmentation().GetSegmentIdBySegmentName("GTVp")
        return nodes["volumes"]["T1"], segmentation, gtvId, paths[0], paths[1]

    def assertOnGrid(self, node, mrNode):
        self.assertTrue(slicer.mrmlScene.IsNodePresent(node))
        self.assertEqual(node.GetImageData().GetDimensions(), mrNode.GetImageData().GetDimensions())
        for value, expected in zip(node.GetSpacing() + node.GetOrigin(), mrNode.GetSpacing() + mrNode.GetOrigin()):
            self.assertAlmostEqual(value, expected, places=5)

    def test_ResidualWithSegment(self):
        import importlib.util
        import shutil
        import tempfile

        from rtresponse import mrml
        from rtresponse.recommendation import REGIMENS as LIBRARY_REGIMENS
        from rtresponse.residual.predict import COLUMN

        for package in ("torch", "timm", "torchvision"):
            self.assertIsNotNone(importlib.util.find_spec(package), f"{package} is needed (Radiotherapy Response: "
                                                                    "install the optional Python packages)")
        self.assertEqual(tuple(LIBRARY_REGIMENS), REGIMENS)
        self.delayDisplay("Predicting residual tumour with two small models trained one epoch")
        folder = tempfile.mkdtemp(dir=slicer.app.temporaryPath)
        try:
            mr, segmentation, gtvId, ccrtPath, icPath = self.makeModels(folder)
            segmentsBefore = mrml.segment_names(segmentation)
            steps = []
            logic = ResidualTumorLogic()
            nodes = logic.run(mr, ccrtPath, icPath, tumorSegmentation=segmentation, tumorSegmentId=gtvId,
                              device="cpu", progress=lambda done, total: steps.append((done, total)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.assertEqual(steps[-1], (RUN_STEPS, RUN_STEPS))
        self.assertEqual(mrml.segment_names(segmentation), segmentsBefore)  # the inputs are only read
        self.assertIsNone(nodes.segmentation)  # a given segment: no new segmentation

        self.assertIn(nodes.recommendation, RECOMMENDATIONS)
        self.assertIn(nodes.recommendation, nodes.reasoning)
        self.assertEqual(nodes.table.GetAttribute(RECOMMENDATION_ATTRIBUTE), nodes.recommendation)
        frame = mrml.table_node_to_dataframe(nodes.table)
        self.assertEqual(frame.index[-1], "patient")
        self.assertGreaterEqual(len(frame), 2)  # at least one tumour slice and the patient row
        self.assertEqual(frame.loc["patient", "recommendation"], nodes.recommendation)
        for regimen in REGIMENS:
            values = frame[COLUMN[regimen]]
            self.assertTrue(((values >= 0) & (values <= 1)).all())
            self.assertAlmostEqual(float(values.iloc[:-1].mean()), float(values["patient"]), places=5)
            self.assertAlmostEqual(nodes.probabilities[regimen], float(values["patient"]), places=5)
        self.assertEqual(set(nodes.gradcam), set(REGIMENS))
        for node in nodes.gradcam.values():
            self.assertOnGrid(node, mr)
            cam = slicer.util.arrayFromVolume(node)
            self.assertGreaterEqual(float(cam.min()), 0.0)
            self.assertLessEqual(float(cam.max()), 1.0)
            self.assertEqual(node.GetAttribute(OUTPUT_ATTRIBUTE), "1")
        self.delayDisplay("Test passed")

    def test_AutoSegmentAndCancel(self):
        import shutil
        import tempfile

        from rtresponse import mrml
        from rtresponse.residual.segmentation import Segmenter, SegmenterConfig, make_segmenter, save_segmenter

        self.delayDisplay("Segmenting the tumour with a small segmenter, then a cancelled run")
        folder = tempfile.mkdtemp(dir=slicer.app.temporaryPath)
        try:
            mr, segmentation, gtvId, ccrtPath, icPath = self.makeModels(folder)
            # An untrained U-Net gives probabilities near 0.5: a threshold of 0 makes a mask for sure (plumbing only)
            config = SegmenterConfig(architecture="unet", input_size=32, unet_features=self.UNET_FEATURES,
                                     backbone_weights=None, threshold=0.0)
            segmenterPath = os.path.join(folder, "segmenter.pt")
            save_segmenter(segmenterPath, Segmenter(make_segmenter("unet", None, unet_features=self.UNET_FEATURES),
                                                    config))
            logic = ResidualTumorLogic()
            nodes = logic.run(mr, ccrtPath, icPath, segmenter=segmenterPath, device="cpu", gradcam=False)
            self.assertIsNotNone(nodes.segmentation)
            self.assertEqual(list(mrml.segment_names(nodes.segmentation).values()), ["tumour"])
            mask = mrml.segment_to_mask(nodes.segmentation, nodes.segmentId, mr)
            self.assertEqual(mask.GetSize(), tuple(mr.GetImageData().GetDimensions()))
            self.assertEqual(nodes.gradcam, {})
            self.assertIn(nodes.recommendation, RECOMMENDATIONS)
            self.assertIn(nodes.recommendation, nodes.reasoning)

            # Output kinds only: Slicer may add helper nodes of other kinds (e.g. subject hierarchy items)
            outputClasses = ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLTableNode")
            before = [slicer.mrmlScene.GetNumberOfNodesByClass(c) for c in outputClasses]
            with self.assertRaises(Cancelled):
                logic.run(mr, ccrtPath, icPath, tumorSegmentation=segmentation, tumorSegmentId=gtvId, device="cpu",
                          shouldCancel=lambda: True)
            self.assertEqual([slicer.mrmlScene.GetNumberOfNodesByClass(c) for c in outputClasses], before)
            # Cancel clicked while the prediction runs: it stops at the next stage, still adding nothing
            answers = iter([False, False])
            with self.assertRaises(Cancelled):
                logic.run(mr, ccrtPath, icPath, tumorSegmentation=segmentation, tumorSegmentId=gtvId, device="cpu",
                          shouldCancel=lambda: next(answers, True))
            self.assertEqual([slicer.mrmlScene.GetNumberOfNodesByClass(c) for c in outputClasses], before)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("Test passed")
