"""Residual Tumor module: will tumour remain after chemoradiotherapy, and which regimen to choose (nasopharyngeal
carcinoma): from the pre-treatment T1-enhanced MR, two residual-tumour CNNs (one trained on CCRT patients, one on
IC+CCRT patients) give the probability of residual tumour under each regimen, per slice and per patient; the lightest
regimen predicted to clear the tumour is recommended (CCRT, IC+CCRT, or IBT when neither does), with its reasoning
and a Grad-CAM map per regimen. The tumour is an existing segment, or is segmented by a segmenter model. Both models
can be trained on a cohort here, with live curves.

A thin widget over RadiotherapyResponseLib: the prediction (``rtresponse residual predict``) and the training
(``rtresponse residual train``) are background jobs in a child process (progress, Cancel; Slicer stays usable).
The Logic predicts in process, for scripts.
"""

import logging
from typing import Annotated

import qt

import slicer
from RadiotherapyResponseLib import residualtumor as rt
from RadiotherapyResponseLib import testdata, training
from RadiotherapyResponseLib.jobfolder import JobFolder
from RadiotherapyResponseLib.jobpanel import JobPanel
from RadiotherapyResponseLib.modulewidget import JobModuleWidget
from RadiotherapyResponseLib.notices import RESEARCH_USE_ONLY, researchUseLabel
from RadiotherapyResponseLib.slicerutils import deviceText, hubSettings, showChart, showTable
from RadiotherapyResponseLib.weightsjob import withImageNetWeights
from RadiotherapyResponseLib.widgets import showComboText, showPath, showSegmentInput
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

DEPENDENCY_GROUPS = ["core", "deep"]  # pandas; PyTorch, torchvision, timm, MONAI (the CNNs and the segmenter)
REGIMENS, RECOMMENDATIONS = rt.REGIMENS, rt.RECOMMENDATIONS
OUTPUT_ATTRIBUTE, RECOMMENDATION_ATTRIBUTE = rt.OUTPUT_ATTRIBUTE, rt.RECOMMENDATION_ATTRIBUTE
TITLE = "Residual Tumor"
RUN_TIP = "Predict residual tumour under CCRT and IC+CCRT and recommend a regimen."
TRAIN_TIP = "Train on the cohort in the background; the models then become this module's models."
Cancelled, ResidualNodes = rt.Cancelled, rt.ResidualNodes


class ResidualTumor(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = TITLE
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse", "Segmentations"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = RESEARCH_USE_ONLY + """
Predicts, from the pre-treatment T1-enhanced MR, whether tumour will remain after concurrent chemoradiotherapy (CCRT)
and after induction chemotherapy plus CCRT (IC+CCRT), and recommends the lightest regimen predicted to clear it
(IBT, an individual-based more intensive treatment, when neither is). Pick the MR, the tumour segment (or a segmenter
model file to segment it automatically) and the two regimen model files, then press Run: the prediction runs in the
background (progress, Cancel). Results: a table with the residual probability under each regimen per tumour slice
and for the patient, the recommendation with its reasoning, a Grad-CAM map per regimen over the MR, and the tumour
segmentation when it was segmented automatically. "Train on a cohort" trains both regimen models, or the tumour
segmenter, in the background with live curves; they become the model files. Research use only: not for clinical
decisions.
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Implements the residual-tumour prediction and treatment recommendation for nasopharyngeal carcinoma (2D tumour
segmentation, CNN residual-tumour classifiers per regimen, Grad-CAM). Built on PyTorch, timm and MONAI.
"""


@parameterNodeWrapper
class ResidualTumorParameterNode:
    """Module state, saved with the scene: the MR, the tumour (a segment, or segmented with segmenterPath when
    autoSegment), the two regimen classifiers, Use CPU, Grad-CAM, the overlaid regimen, the latest run's outputs, and
    the training options (what: the regimen models or the tumour segmenter; manifest, network, starting weights,
    epochs, learning rate, crop size 0 for the default, the manifest's names, output folder: empty for a new one in
    the models folder)."""

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
    trainWhat: Annotated[str, Choice([rt.CLASSIFIERS, rt.SEGMENTER])] = rt.CLASSIFIERS
    trainManifest: str = ""
    trainNetwork: str = "xception"
    trainWeights: Annotated[str, Choice(list(rt.WEIGHTS))] = "imagenet"
    trainEpochs: Annotated[int, WithinRange(1, 10000)] = 40
    trainLearningRate: Annotated[float, WithinRange(1e-6, 1.0)] = 0.001
    trainInputSize: Annotated[int, WithinRange(0, 1024)] = 0
    trainImage: str = "T1"
    trainMask: str = "GTVp"
    trainRegimen: str = "regimen"
    trainOutcome: str = "residual"
    trainOutput: str = ""


class ResidualTumorWidget(JobModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Parameter node, scene close and job-folder plumbing: JobModuleWidget (RadiotherapyResponseLib)."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.panel = self._parameterNode = self._parameterNodeGuiTag = None
        self._pathInputs = []  # (ctkPathLineEdit, str parameter): Slicer binds a str to one only as a Path

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.layout.addWidget(researchUseLabel())
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ResidualTumor.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = ResidualTumorLogic()
        uiWidget.setMRMLScene(slicer.mrmlScene)
        from rtresponse.features.deep2d import MODELS

        self.ui.trainNetworkComboBox.addItems(list(MODELS) + [rt.PAPER])
        for index, spec in enumerate(MODELS.values()):
            self.ui.trainNetworkComboBox.setItemData(index, spec.describe(), qt.Qt.ToolTipRole)
        self.panel = JobPanel(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton,
                              [self.ui.runButton, self.ui.trainButton], onChange=self.updateGUI)

        self.observeScene(slicer.mrmlScene)
        # The rest is bound through SlicerParameterName in the .ui; Slicer cannot bind a segment selector
        self.ui.tumorSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                             lambda node: self._setParameter("tumorSegmentation", node))
        self.ui.tumorSegmentSelector.connect("currentSegmentChanged(QString)",
                                             lambda segmentId: self._setParameter("tumorSegmentId", segmentId or ""))
        self._pathInputs = [(self.ui.segmenterPathLineEdit, "segmenterPath"),
                            (self.ui.ccrtModelPathLineEdit, "ccrtModelPath"),
                            (self.ui.icModelPathLineEdit, "icModelPath"),
                            (self.ui.trainManifestPathLineEdit, "trainManifest"),
                            (self.ui.trainOutputPathLineEdit, "trainOutput")]
        for lineEdit, parameter in self._pathInputs:
            lineEdit.connect("currentPathChanged(QString)", lambda path, name=parameter: self._setParameter(name, path))
        combo = self.ui.trainNetworkComboBox
        combo.connect("currentIndexChanged(int)", lambda index: index >= 0 and self._setParameter(
            "trainNetwork", combo.itemText(index)))
        self.ui.overlayComboBox.connect("currentIndexChanged(int)", self.onOverlayChanged)
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.initializeParameterNode()

    def guessInputs(self, parameterNode):
        rt.guessInputs(parameterNode, slicer.mrmlScene)

    def updateGUI(self, *unused):
        """Follow the parameter node: segment selector, paths, network, model card, device, Run and Train."""
        p = self._parameterNode
        if p:
            showSegmentInput(p, self.ui.tumorSegmentSelector, "tumorSegmentation", "tumorSegmentId")
            for lineEdit, parameter in self._pathInputs:
                showPath(lineEdit, getattr(p, parameter))
            showComboText(self.ui.trainNetworkComboBox, p.trainNetwork)
            for widget in (self.ui.trainNetworkComboBox, self.ui.trainRegimenLineEdit, self.ui.trainOutcomeLineEdit):
                widget.enabled = p.trainWhat != rt.SEGMENTER  # the segmenter trains U-Net and DeepLabv3, no outcome
            self.ui.tumorSegmentSelector.enabled = not p.autoSegment
            self.ui.segmenterPathLineEdit.enabled = p.autoSegment
            self.ui.recommendationLabel.text = rt.recommendationText(p.outputTable)
            self.ui.modelCardLabel.text = training.cardSummary(training.modelCard(p.ccrtModelPath)) \
                if p.ccrtModelPath else ""
        self.ui.deviceLabel.text = "CPU (Use CPU is checked)" if p and p.forceCpu else deviceText(hubSettings().device)
        self.showProblem(self.ui.runButton, rt.inputProblem(p), RUN_TIP, inStatus=True)
        self.showProblem(self.ui.trainButton, "No parameter node." if p is None else training.manifestProblem(
            p.trainManifest) or (training.outputProblem(p.trainOutput) if p.trainOutput else None), TRAIN_TIP)

    def device(self):
        """"cpu" when Use CPU is checked, else the Radiotherapy Response device setting (auto, cpu or cuda)."""
        p = self._parameterNode
        return "cpu" if p is not None and p.forceCpu else hubSettings().device

    def _installed(self):
        import RadiotherapyResponse

        if RadiotherapyResponse.ensureDependencies(DEPENDENCY_GROUPS):
            return True
        self.ui.statusLabel.text = "PyTorch, timm and MONAI are needed: they were not installed."
        return False

    # --- prediction: a background job

    def onRunButton(self):
        if not self._installed():
            return
        p = self._parameterNode
        inputs, overlay = rt.ResidualInputs.fromParameterNode(p), p.overlayRegimen
        folder, manifest = self.exportToJobFolder("ResidualTumor", lambda path: rt.exportPatient(path, inputs))
        if folder is None:
            return
        self.panel.start(rt.predictArguments(manifest, inputs, self.device(), folder.path),
                         "Segmenting and predicting..." if inputs.segmentation is None else "Predicting...",
                         lambda result: self._load(inputs, folder.path, overlay),
                         onFailure=lambda result: slicer.util.errorDisplay(
                             f"Residual tumour prediction failed: {result.message}", windowTitle=TITLE),
                         folder=folder, inputs=inputs.nodes(), scene=slicer.mrmlScene,
                         cancelledText="Cancelled: nothing was added to the scene.")

    def _load(self, inputs, folder, overlay):
        from rtresponse.errors import InputError

        try:
            nodes = rt.loadPrediction(inputs, folder)
        except InputError as error:  # the patient could not be predicted (e.g. the segmenter found no tumour)
            return f"No prediction: {error}"
        if self._parameterNode:
            rt.keepOutputs(self._parameterNode, nodes)
        rt.showResult(inputs.mr, nodes, overlay)
        text = rt.summary(nodes)
        logging.info(text)
        return text

    def onOverlayChanged(self, *unused):
        """Show the chosen regimen's Grad-CAM map over the MR (when the latest run made one)."""
        p = self._parameterNode
        if p is None or not p.mrVolume:
            return
        # The combo box's text: this slot may run before the parameter node follows the combo box
        regimen = self.ui.overlayComboBox.currentText or p.overlayRegimen
        overlay = p.outputGradcamCCRT if regimen == "CCRT" else p.outputGradcamIC
        if overlay is not None:
            slicer.util.setSliceViewerLayers(background=p.mrVolume, foreground=overlay, foregroundOpacity=0.5)

    # --- training on a cohort: a background job with live curves

    def onTrainButton(self):
        if not self._installed():
            return
        p, hub = self._parameterNode, hubSettings()
        out = p.trainOutput or str(training.defaultOutputFolder(hub.models_folder, rt.TRAINING_PREFIX))
        arguments, network, description = rt.trainingPlan(p, out, self.device(), hub.weights_folder)
        what = p.trainWhat

        def start():
            training.startTraining(self.panel, arguments, description, f"Residual {what} training", slicer.mrmlScene,
                                   lambda result: self._trained(what, out), showChart=showChart,
                                   folder=JobFolder("ResidualTumorTraining"))

        if network is None:
            return start()
        withImageNetWeights(self.panel, network, hub.weights_folder, start, title=TITLE)  # offers to download them

    def _trained(self, what, out):
        parameters, text = rt.trainedParameters(what, out)
        for name, value in parameters.items():
            self._setParameter(name, value)
        return text


class ResidualTumorLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points, predicting in process (the widget runs the prediction as a background job)."""

    run = staticmethod(rt.predict)  # (mr, ccrt model, ic model, tumorSegmentation=..., ..., segmenter=...) -> nodes
    resultFrame = staticmethod(rt.resultFrame)
    recommendationText = staticmethod(rt.recommendationText)
    showResult = staticmethod(rt.showResult)
    showTable = staticmethod(showTable)

    def getParameterNode(self):
        return ResidualTumorParameterNode(super().getParameterNode())

    @staticmethod
    def guessInputs(parameterNode, scene=None):
        rt.guessInputs(parameterNode, scene or slicer.mrmlScene)


class ResidualTumorTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_JobWithSegment, self.test_InProcessAutoSegmentAndCancel):
            self.setUp()
            test()

    def _models(self, folder):
        import importlib.util

        missing = [p for p in ("torch", "timm", "torchvision") if importlib.util.find_spec(p) is None]
        if missing:
            self.skipTest(f"{', '.join(missing)} not installed (Radiotherapy Response: install the optional packages)")
        manifest, ccrt, ic = testdata.residualModels(folder)
        return (*testdata.residualScene(slicer.mrmlScene, manifest), ccrt, ic)

    def test_JobWithSegment(self):
        """The widget's path: the patient exported, `residual predict` in PythonSlicer, the results back."""
        from rtresponse import mrml
        from rtresponse.jobs import FINISHED, run
        from rtresponse.recommendation import REGIMENS as LIBRARY_REGIMENS
        from RadiotherapyResponseLib.backgroundjob import job_environment, slicer_python

        self.assertEqual(tuple(LIBRARY_REGIMENS), REGIMENS)
        self.delayDisplay("Predicting residual tumour in a background job with two small models")
        folder = JobFolder("ResidualTumorTest")
        try:
            mr, segmentation, gtvId, ccrt, ic = self._models(str(folder.path))
            segmentsBefore = mrml.segment_names(segmentation)
            inputs = rt.ResidualInputs(mr, segmentation, gtvId, "", ccrt, ic, gradcam=True)
            job = folder.file("job")
            manifest = rt.exportPatient(job, inputs)
            result = run(rt.predictArguments(manifest, inputs, "cpu", job), python=slicer_python(),
                         env=job_environment(), timeout=600)
            self.assertEqual(result.state, FINISHED, result.message)
            nodes = rt.loadPrediction(inputs, job)
        finally:
            folder.remove()
        self.assertEqual(mrml.segment_names(segmentation), segmentsBefore)  # the inputs are only read
        self.assertIsNone(nodes.segmentation)  # a given segment: no new segmentation
        testdata.checkResidualOutputs(nodes, mr)
        self.delayDisplay("Test passed")

    def test_InProcessAutoSegmentAndCancel(self):
        from rtresponse import mrml

        self.delayDisplay("Segmenting the tumour with a small segmenter (the Logic, in process), then a cancelled run")
        folder = JobFolder("ResidualTumorTest")
        try:
            mr, segmentation, gtvId, ccrt, ic = self._models(str(folder.path))
            segmenter = testdata.saveResidualSegmenter(folder.file("segmenter.pt"))
            logic = ResidualTumorLogic()
            nodes = logic.run(mr, ccrt, ic, segmenter=str(segmenter), device="cpu", gradcam=False)
            self.assertEqual(list(mrml.segment_names(nodes.segmentation).values()), ["tumour"])
            testdata.checkResidualOutputs(nodes, mr, gradcam=False)
            outputClasses = ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLTableNode")
            before = [slicer.mrmlScene.GetNumberOfNodesByClass(c) for c in outputClasses]
            for answers in ([], [False, False]):  # before the prediction, then between its stages
                answer = iter(answers)
                with self.assertRaises(Cancelled):
                    logic.run(mr, ccrt, ic, tumorSegmentation=segmentation, tumorSegmentId=gtvId, device="cpu",
                              shouldCancel=lambda: next(answer, True))
            self.assertEqual([slicer.mrmlScene.GetNumberOfNodesByClass(c) for c in outputClasses], before)
        finally:
            folder.remove()
        self.delayDisplay("Test passed")
