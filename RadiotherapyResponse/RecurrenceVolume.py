"""Recurrence Volume module: where a head and neck tumour will relapse, from the pre-treatment FDG-PET/CT and the GTV
(Kutnár et al.): a 3D U-Net's relapse probability map over the CT, a dose-painting segment thresholded from it, the
SUVmax-threshold and GTV baselines and, given the observed relapse, a metrics table; and training the U-Net on a
cohort, with live curves.

A thin widget over RadiotherapyResponseLib: the prediction (``rtresponse recurrence predict``) and the training
(``rtresponse recurrence train``) are background jobs in a child process (progress, Cancel; Slicer stays usable).
The Logic predicts in process, for scripts.
"""

import logging
import os
from typing import Annotated

import slicer
from RadiotherapyResponseLib import recurrencevolume as rv
from RadiotherapyResponseLib import dicomexport, testdata, training
from RadiotherapyResponseLib.jobfolder import JobFolder
from RadiotherapyResponseLib.jobpanel import JobPanel
from RadiotherapyResponseLib.modulewidget import JobModuleWidget
from RadiotherapyResponseLib.notices import RESEARCH_USE_ONLY, researchUseLabel
from RadiotherapyResponseLib.slicerutils import deviceText, hubSettings, showChart, showTable
from RadiotherapyResponseLib.widgets import showPath, showSegmentInput
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
DEEP_DEPENDENCY_GROUPS = ["deep"]  # a model's prediction and training (PyTorch, MONAI)
OUTPUT_ATTRIBUTE, THRESHOLD_ATTRIBUTE = rv.OUTPUT_ATTRIBUTE, rv.THRESHOLD_ATTRIBUTE
DEFAULT_FRACTION_PERCENT = 38.0  # rtresponse.recurrence.PAPER_FRACTION in percent (checked by the self-test)
TITLE = "Recurrence Volume"
RUN_TIP = "Predict the relapse volume (with a model) and make the SUVmax-threshold and GTV baseline segments."
EXPORT_TIP = "Write the result segments as an RTSTRUCT and a DICOM-SEG referencing the planning CT series."
TRAIN_TIP = "Train the U-Net on the cohort in the background; the model then becomes this module's model."
Cancelled = rv.Cancelled


class RecurrenceVolume(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = TITLE
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse", "Segmentations"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = RESEARCH_USE_ONLY + """
Predicts where a tumour will relapse after radiotherapy from the pre-treatment CT, FDG-PET and GTV. Pick the volumes
and segments, optionally a trained model file, and press Run: the prediction runs in the background (progress,
Cancel). A model gives a relapse probability map (shown over the CT) and a "Predicted relapse" segment: the map at or
above the probability threshold, which can be moved afterwards for dose painting. Every run also makes the
SUVmax-threshold and GTV baseline segments and, when the observed relapse segment is given, a table of Dice, recall,
precision, volume and points of origin per method. Without a model only the baselines are made. "Train on a cohort"
trains the U-Net on a cohort manifest in the background, with live loss and Dice curves; the trained model (in the
models folder of the Radiotherapy Response settings) becomes the model file. Research use only: not for clinical
decisions. See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Implements the recurrence-volume prediction of Kutnár et al. (3D U-Net on FDG-PET/CT, SUVmax-threshold and GTV
baselines). Built on MONAI and PyTorch.
"""


@parameterNodeWrapper
class RecurrenceVolumeParameterNode:
    """Module state, saved with the scene: the images and segments (GTV required; brain left out of the SUVmax
    baseline; the observed relapse for the metrics), the model file (empty: baselines only), the SUVmax fraction,
    the probability threshold, the latest run's outputs, and the training options (manifest, epochs, runs,
    learning rate, box "X Y Z", fine-tune the model file, output folder: empty for a new one in the models folder);
    the export to the planning system (the planning CT's DICOM folder, the output folder)."""

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
    trainManifest: str = ""
    trainEpochs: Annotated[int, WithinRange(1, 100000)] = 500
    trainRuns: Annotated[int, WithinRange(1, 100)] = 5
    trainLearningRate: Annotated[float, WithinRange(1e-6, 10.0)] = 0.1
    trainBox: str = ""
    trainFineTune: bool = False
    trainOutput: str = ""
    dicomFolder: str = ""
    exportFolder: str = ""


class RecurrenceVolumeWidget(JobModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Parameter node, scene close and job-folder plumbing: JobModuleWidget (RadiotherapyResponseLib)."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.panel = self._parameterNode = self._parameterNodeGuiTag = None
        self._segmentInputs = []  # (segment selector, segmentation parameter, segment id parameter)
        self._pathInputs = []  # (ctkPathLineEdit, str parameter): Slicer binds a str to one only as a Path

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.layout.addWidget(researchUseLabel())
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RecurrenceVolume.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = RecurrenceVolumeLogic()
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.panel = JobPanel(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton,
                              [self.ui.runButton, self.ui.trainButton, self.ui.exportButton], onChange=self.updateGUI)

        self.observeScene(slicer.mrmlScene)
        # The rest is bound through SlicerParameterName in the .ui; Slicer cannot bind a segment selector
        self._segmentInputs = [(self.ui.gtvSegmentSelector, "gtvSegmentation", "gtvSegmentId"),
                               (self.ui.brainSegmentSelector, "brainSegmentation", "brainSegmentId"),
                               (self.ui.relapseSegmentSelector, "relapseSegmentation", "relapseSegmentId")]
        for selector, nodeParameter, idParameter in self._segmentInputs:
            selector.connect("currentNodeChanged(vtkMRMLNode*)",
                             lambda node, name=nodeParameter: self._setParameter(name, node))
            selector.connect("currentSegmentChanged(QString)",
                             lambda segmentId, name=idParameter: self._setParameter(name, segmentId or ""))
        self._pathInputs = [(self.ui.modelPathLineEdit, "modelPath"),
                            (self.ui.trainManifestPathLineEdit, "trainManifest"),
                            (self.ui.trainOutputPathLineEdit, "trainOutput"),
                            (self.ui.dicomFolderPathLineEdit, "dicomFolder"),
                            (self.ui.exportFolderPathLineEdit, "exportFolder")]
        for lineEdit, parameter in self._pathInputs:
            lineEdit.connect("currentPathChanged(QString)", lambda path, name=parameter: self._setParameter(name, path))
        # The slider does not track (valueChanged only on release): each value re-thresholds the whole CT grid
        self.ui.thresholdSliderWidget.connect("valueChanged(double)", self.onThresholdChanged)
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.initializeParameterNode()

    def guessInputs(self, parameterNode):
        rv.guessInputs(parameterNode, slicer.mrmlScene)
        if not parameterNode.dicomFolder:  # a CT from the DICOM module: its series' folder in the database
            parameterNode.dicomFolder = dicomexport.dicomSource(parameterNode.ctVolume)[0] or ""

    def updateGUI(self, *unused):
        """Follow the parameter node: segment selectors, paths, model card, device, Run and Train buttons."""
        p = self._parameterNode
        if p:
            for selector, nodeParameter, idParameter in self._segmentInputs:
                showSegmentInput(p, selector, nodeParameter, idParameter)
            for lineEdit, parameter in self._pathInputs:
                showPath(lineEdit, getattr(p, parameter))
            self.ui.modelCardLabel.text = training.cardSummary(training.modelCard(p.modelPath)) if p.modelPath else \
                "No model: Run makes the baselines only."
        self.ui.deviceLabel.text = deviceText(hubSettings().device)
        self.showProblem(self.ui.runButton, rv.inputProblem(p), RUN_TIP, inStatus=True)
        self.showProblem(self.ui.trainButton, self.trainProblem(), TRAIN_TIP)
        self.showProblem(self.ui.exportButton, dicomexport.exportProblem(
            p.dicomFolder if p else "", p.outputSegmentation if p else None, self._resultSegments()), EXPORT_TIP)

    def _resultSegments(self):
        segmentation = self._parameterNode.outputSegmentation if self._parameterNode else None
        return list(segmentation.GetSegmentation().GetSegmentIDs()) if segmentation else []

    def trainProblem(self):
        p = self._parameterNode
        if p is None:
            return "No parameter node."
        try:
            rv.parseBox(p.trainBox)
        except ValueError as error:
            return f"Box: {error}."
        if p.trainFineTune and not p.modelPath:
            return "Select the model file to fine-tune, or uncheck Fine-tune."
        return training.manifestProblem(p.trainManifest) or (training.outputProblem(p.trainOutput)
                                                             if p.trainOutput else None)

    def _installed(self, groups, what):
        import RadiotherapyResponse

        if RadiotherapyResponse.ensureDependencies(groups):
            return True
        self.ui.statusLabel.text = f"{what} needed: not installed."
        return False

    # --- prediction: a background job; the baselines and the threshold slider in process (well under a second)

    def onRunButton(self):
        p = self._parameterNode
        inputs = rv.RecurrenceInputs.fromParameterNode(p)
        if not p.modelPath:
            if self._installed(DEPENDENCY_GROUPS, "pandas is"):
                with slicer.util.tryWithErrorDisplay("Making the baselines failed.", waitCursor=True):
                    self.ui.statusLabel.text = self._show(inputs, rv.makeOutputs(inputs))
            return
        if not self._installed(DEPENDENCY_GROUPS + DEEP_DEPENDENCY_GROUPS, "PyTorch and MONAI are"):
            return
        folder, manifest = self.exportToJobFolder("RecurrenceVolume", lambda path: rv.exportPatient(path, inputs))
        if folder is None:
            return
        out = folder.file(rv.PREDICTION_FOLDER)
        self.panel.start(rv.predictArguments(manifest, p.modelPath, hubSettings().device, p.threshold, out),
                         "Predicting the relapse volume...",
                         lambda result: self._show(inputs, rv.loadPrediction(inputs, out)),
                         onFailure=lambda result: slicer.util.errorDisplay(
                             f"Recurrence prediction failed: {result.message}", windowTitle=TITLE),
                         folder=folder, inputs=inputs.nodes(), scene=slicer.mrmlScene,
                         cancelledText="Cancelled: nothing was added to the scene.")

    def _show(self, inputs, nodes):
        if self._parameterNode:
            rv.keepOutputs(self._parameterNode, nodes)
        rv.showResult(inputs.ct, nodes)
        text = rv.summary(nodes)
        logging.info(text)
        return text

    def onThresholdChanged(self, value):
        """Dose painting: redraw the predicted-relapse segment at the new threshold (no new prediction)."""
        nodes = None if self.panel.running else rv.currentResult(self._parameterNode)
        if nodes is None or rv.appliedThreshold(nodes) == round(value, 2):
            return
        with slicer.util.tryWithErrorDisplay("Failed to apply the probability threshold.", waitCursor=True):
            self._parameterNode.predictedSegmentId = rv.setThreshold(nodes, value)
            self.ui.statusLabel.text = (f"Predicted relapse redrawn at p >= {value:.2f}"
                                        + (" (the metrics table is still at the run's threshold)."
                                           if nodes.metrics else "."))

    # --- training on a cohort: a background job with live curves

    def onTrainButton(self):
        if not self._installed(DEPENDENCY_GROUPS + DEEP_DEPENDENCY_GROUPS, "PyTorch and MONAI are"):
            return
        p, hub = self._parameterNode, hubSettings()
        out = p.trainOutput or str(training.defaultOutputFolder(hub.models_folder, rv.TRAINING_PREFIX))
        arguments = rv.trainArguments(p.trainManifest, out, hub.device, p.trainEpochs, p.trainRuns,
                                      p.trainLearningRate, p.trainBox, p.modelPath if p.trainFineTune else "")
        training.startTraining(self.panel, arguments, f"Training the recurrence U-Net into {out}...",
                               "Recurrence U-Net training", slicer.mrmlScene, lambda result: self._trained(out),
                               showChart=showChart, folder=JobFolder("RecurrenceVolumeTraining"))

    def _trained(self, out):
        model = os.path.join(out, rv.MODEL_FILE)
        self._setParameter("modelPath", model)
        return f"Trained: {model} is now the model file.\n{training.cardSummary(training.modelCard(model))}"


    # --- the result segments back to the planning system: a background job

    def onExportButton(self):
        if not self._installed(DEPENDENCY_GROUPS + ["dicom"], "pydicom, rt-utils and highdicom are"):
            return
        p, segmentIds = self._parameterNode, self._resultSegments()
        ctFolder, seriesUid = dicomexport.dicomSource(p.ctVolume)
        seriesUid = seriesUid if ctFolder and os.path.samefile(ctFolder, p.dicomFolder) else None
        folder, masks = self.exportToJobFolder("RecurrenceVolumeExport", lambda path: dicomexport.exportMasks(
            path, p.outputSegmentation, segmentIds, p.ctVolume))
        if folder is None:
            return
        out = p.exportFolder or str(training.defaultOutputFolder(hubSettings().models_folder, "DICOM"))
        model = p.outputSegmentation.GetAttribute(rv.MODEL_ATTRIBUTE) or "none"
        arguments = dicomexport.exportArguments(
            p.dicomFolder, masks, out, seriesUid, algorithm=f"RadiotherapyResponse {TITLE} (model: {model})",
            label="Recurrence", colours=dicomexport.segmentColours(p.outputSegmentation, segmentIds))
        self.panel.start(arguments + (["--overwrite"] if p.exportFolder else []), "Writing RTSTRUCT and SEG...",
                         lambda result: dicomexport.summary(out), folder=folder, scene=slicer.mrmlScene,
                         onFailure=lambda result: slicer.util.errorDisplay(f"Export failed: {result.message}",
                                                                           windowTitle=TITLE))


class RecurrenceVolumeLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points, predicting in process (the widget runs the prediction as a background job)."""

    run = staticmethod(rv.predict)  # (ct, pet, gtv segmentation, gtv id, model=..., device=..., ...) -> nodes
    setThreshold = staticmethod(rv.setThreshold)  # (nodes, threshold) -> new segment id
    appliedThreshold = staticmethod(rv.appliedThreshold)
    showResult = staticmethod(rv.showResult)
    showTable = staticmethod(showTable)

    def getParameterNode(self):
        return RecurrenceVolumeParameterNode(super().getParameterNode())

    @staticmethod
    def guessInputs(parameterNode, scene=None):
        rv.guessInputs(parameterNode, scene or slicer.mrmlScene)


class RecurrenceVolumeTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_JobPredictionAndDosePainting, self.test_InProcessBaselinesAndCancel):
            self.setUp()
            test()

    def _needs(self, *packages):
        import importlib.util

        missing = [p for p in packages if importlib.util.find_spec(p) is None]
        if missing:
            self.skipTest(f"{', '.join(missing)} not installed (Radiotherapy Response: install the optional packages)")

    def test_JobPredictionAndDosePainting(self):
        """The widget's path: the patient exported, `recurrence predict` in PythonSlicer, the outputs back."""
        import numpy as np
        import SimpleITK as sitk
        from rtresponse import mrml
        from rtresponse.jobs import FINISHED, run
        from rtresponse.recurrence import PAPER_FRACTION
        from rtresponse.recurrence.nodes import PREDICTED
        from RadiotherapyResponseLib.backgroundjob import job_environment, slicer_python

        self._needs("torch", "monai")
        self.delayDisplay("Predicting with a small random network in a background job, then moving the threshold")
        logic = RecurrenceVolumeLogic()
        p = logic.getParameterNode()
        self.assertAlmostEqual(p.suvmaxFractionPercent / 100.0, PAPER_FRACTION)
        ct, pet, segmentation, gtvId, relapseId = testdata.recurrenceScene(slicer.mrmlScene)
        folder = JobFolder("RecurrenceVolumeTest")
        try:
            model = testdata.saveRecurrenceModel(os.path.join(folder.path, "model.pt"))
            inputs = rv.RecurrenceInputs(ct, pet, segmentation, gtvId, relapseSegmentation=segmentation,
                                         relapseSegmentId=relapseId, modelPath=str(model))
            manifest, out = rv.exportPatient(folder.file("job"), inputs), folder.file("out")
            result = run(rv.predictArguments(manifest, model, "cpu", 0.5, out), python=slicer_python(),
                         env=job_environment(), timeout=600)
            self.assertEqual(result.state, FINISHED, result.message)
            nodes = rv.loadPrediction(inputs, out)
        finally:
            folder.remove()
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 2)  # the inputs are only read
        testdata.checkRecurrenceOutputs(nodes, ct)
        self.assertEqual(logic.appliedThreshold(nodes), 0.5)

        self.delayDisplay("Dose painting: threshold 0.2")
        before = nodes.segment_ids[PREDICTED]
        after = logic.setThreshold(nodes, 0.2)
        self.assertIsNone(nodes.segmentation.GetSegmentation().GetSegment(before))
        self.assertIn("0.20", nodes.segmentation.GetSegmentation().GetSegment(after).GetName())
        self.assertEqual(logic.appliedThreshold(nodes), 0.2)
        predicted = slicer.util.arrayFromVolume(nodes.probability) >= 0.2
        mask = sitk.GetArrayFromImage(mrml.segment_to_mask(nodes.segmentation, after, ct))
        np.testing.assert_array_equal(mask != 0, predicted)
        self.delayDisplay("Test passed")

    def test_InProcessBaselinesAndCancel(self):
        from rtresponse import mrml

        self.delayDisplay("Baselines without a model, and a cancelled run (the Logic, in process)")
        ct, pet, segmentation, gtvId, relapseId = testdata.recurrenceScene(slicer.mrmlScene)
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
