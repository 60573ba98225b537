"""Response Model (I3D) module: the inflated 3D network of Jeong et al. (a frozen ResNet-50 inflated to 3D reads the
tumour from MR sequences, fused with three clinical factors chosen by LASSO), trained on a cohort with live loss
curves and applied to the patient in the scene.

A thin widget over RadiotherapyResponseLib: training (``rtresponse i3d train``) and prediction (``rtresponse i3d
predict`` on the exported patient) are background jobs in a child process (progress, Cancel; Slicer stays usable).
The Logic trains and predicts in process, for scripts.
"""

import os
from typing import Annotated

import slicer
from RadiotherapyResponseLib import i3dinputs, i3djobs, i3dpredict, selftests, training
from RadiotherapyResponseLib.filecache import PerFileVersion, fileVersion
from RadiotherapyResponseLib.jobfolder import JobFolder
from RadiotherapyResponseLib.jobpanel import JobPanel
from RadiotherapyResponseLib.modulewidget import JobModuleWidget
from RadiotherapyResponseLib.notices import RESEARCH_USE_ONLY, researchUseLabel
from RadiotherapyResponseLib.slicerutils import deviceText, hubSettings, showChart, showTable
from RadiotherapyResponseLib.widgets import showComboItems, showPath, showSegmentInput
from slicer import vtkMRMLPlotChartNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# PyTorch, MONAI and Optuna, scikit-learn for the split and the LASSO, pandas for the cohort
DEPENDENCY_GROUPS = ["core", "modelling", "deep"]
TITLE = "Response Model (I3D)"
TRAIN_TIP = "Compute the I3D features of the cohort, train DLR (MR) and DLR (MR + CF) and test them."
PREDICT_TIP = "Probability of the model's positive class for the current patient."
TRAINING_PREFIX = "I3D"  # trained models go to <models folder>/I3D-<date>-<time>


class ResponseModelI3D(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = TITLE
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = RESEARCH_USE_ONLY + """
Deep radiomics of the inflated 3D network (I3D) of Jeong et al. <b>Train on a cohort</b>: from a cohort manifest, a
frozen ResNet-50 inflated to 3D reads the tumour from MR sequences; DLR (MR) and, with three clinical factors chosen
by LASSO, DLR (MR + CF) are trained and tested on a held-out third of the patients in a background job, with live
loss curves; the models go to the models folder of the Radiotherapy Response settings (or the folder you choose).
<b>Predict</b> applies a saved I3D model to the current patient's MR volumes, tumour segment and clinical values, in
a background job. Research use only: not for clinical decisions.
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Implements the inflated 3D ResNet-50 with clinical factors of Jeong et al. (cervical cancer). Built on PyTorch, MONAI,
Optuna and scikit-learn.
"""


@parameterNodeWrapper
class ResponseModelI3DParameterNode:
    """Module state, saved with the scene. Training: i3dManifest, i3dOutcome (name without outcome_), i3dPositive;
    i3dSequences (space-separated image names), i3dMask, i3dClinicalFactors (space-separated, empty: every clin_
    column), i3dImageOnly; i3dWeights (imagenet, random or file) and i3dWeightsFile; i3dShape, i3dSpacing ("x y z"),
    i3dTrials, i3dMaxEpochs, i3dOutputFolder (empty: a new folder in the models folder), i3dForceCpu;
    i3dResultsTable, i3dLossChart: the latest training's outputs. Prediction: i3dModelPath, i3dVolume1-3 (the model's
    sequences in order), i3dSegmentation/i3dSegmentId, i3dClinicalTable, i3dPatient, i3dClinicalValues
    ("factor=value; ...")."""

    i3dManifest: str = ""
    i3dOutcome: str = ""
    i3dPositive: str = ""
    i3dSequences: str = "T1 T2"
    i3dMask: str = "GTVp"
    i3dClinicalFactors: str = ""
    i3dImageOnly: bool = False
    i3dWeights: Annotated[str, Choice([value for value, _ in i3dinputs.WEIGHTS])] = "imagenet"
    i3dWeightsFile: str = ""
    i3dShape: str = "96 96 24"
    i3dSpacing: str = "1.5 1.5 3"
    i3dTrials: Annotated[int, WithinRange(0, 1000)] = 0
    i3dMaxEpochs: Annotated[int, WithinRange(1, 10000)] = 300
    i3dOutputFolder: str = ""
    i3dForceCpu: bool = False
    i3dResultsTable: vtkMRMLTableNode
    i3dLossChart: vtkMRMLPlotChartNode
    i3dModelPath: str = ""
    i3dVolume1: vtkMRMLScalarVolumeNode
    i3dVolume2: vtkMRMLScalarVolumeNode
    i3dVolume3: vtkMRMLScalarVolumeNode
    i3dSegmentation: vtkMRMLSegmentationNode
    i3dSegmentId: str = ""
    i3dClinicalTable: vtkMRMLTableNode
    i3dPatient: str = ""
    i3dClinicalValues: str = ""


class ResponseModelI3DWidget(JobModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Parameter node, scene close and job-folder plumbing: JobModuleWidget (RadiotherapyResponseLib)."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.panel = self._parameterNode = self._parameterNodeGuiTag = None
        self._cohort = PerFileVersion(i3dinputs.cohortNames, "The manifest cannot be used")
        self._model = PerFileVersion(i3dinputs.modelInfo, "The model file cannot be used")
        self._pathInputs = []  # (ctkPathLineEdit, str parameter): Slicer binds a str to one only as a Path

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.layout.addWidget(researchUseLabel())
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ResponseModelI3D.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = ResponseModelI3DLogic()
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.panel = JobPanel(self.ui.i3dProgressBar, self.ui.i3dStatusLabel, self.ui.i3dCancelButton,
                              [self.ui.i3dTrainButton, self.ui.i3dPredictButton], onChange=self.updateGUI)
        self.observeScene(slicer.mrmlScene)
        # The rest is bound through SlicerParameterName in the .ui: the manifest's outcomes, the weights choice, the
        # paths and the tumour segment are synchronised here
        for _value, text in i3dinputs.WEIGHTS:
            self.ui.i3dWeightsComboBox.addItem(text)
        self.ui.i3dOutcomeComboBox.connect("currentIndexChanged(int)", lambda index: index >= 0 and self._setParameter(
            "i3dOutcome", self.ui.i3dOutcomeComboBox.itemText(index)))
        self.ui.i3dWeightsComboBox.connect("currentIndexChanged(int)", lambda index: index >= 0 and self._setParameter(
            "i3dWeights", i3dinputs.WEIGHTS[index][0]))
        self._pathInputs = [(self.ui.i3dManifestPathLineEdit, "i3dManifest"),
                            (self.ui.i3dWeightsFilePathLineEdit, "i3dWeightsFile"),
                            (self.ui.i3dOutputFolderPathLineEdit, "i3dOutputFolder"),
                            (self.ui.i3dModelPathLineEdit, "i3dModelPath")]
        for lineEdit, parameter in self._pathInputs:
            lineEdit.connect("currentPathChanged(QString)", lambda path, name=parameter: self._setParameter(name, path))
        self.ui.i3dSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                           lambda node: self._setParameter("i3dSegmentation", node))
        self.ui.i3dSegmentSelector.connect("currentSegmentChanged(QString)",
                                           lambda segmentId: self._setParameter("i3dSegmentId", segmentId or ""))
        self.ui.i3dTrainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.i3dPredictButton.connect("clicked(bool)", self.onPredictButton)
        self.initializeParameterNode()

    def guessInputs(self, parameterNode):
        i3dinputs.guessPredictInputs(parameterNode, self.modelInfo(), slicer.mrmlScene)

    def device(self):
        """"cpu" when Use CPU is checked, else the Radiotherapy Response device setting (auto, cpu or cuda)."""
        p = self._parameterNode
        return "cpu" if p is not None and p.i3dForceCpu else hubSettings().device

    def cohortNames(self):
        """The manifest's names (dict), a problem (str), or None while Python packages are missing."""
        path = self._parameterNode.i3dManifest if self._parameterNode else ""
        if not path or fileVersion(path) is None:
            return f"The manifest file cannot be read: {path}" if path else "Choose the cohort manifest (CSV)."
        return self._cohort(path)

    def modelInfo(self):
        """What the chosen model needs (dict), a problem (str), or None (no file, or PyTorch missing)."""
        info = self._model(self._parameterNode.i3dModelPath if self._parameterNode else "")
        if isinstance(info, dict) and self._model.changed:  # a new model: pick its inputs from the scene
            i3dinputs.guessPredictInputs(self._parameterNode, info, slicer.mrmlScene)
        return info

    def updateGUI(self, *unused):
        """Follow the parameter node: outcome list, weights, paths, segment, Predict's volume labels, buttons."""
        p = self._parameterNode
        info, cohort = (self.modelInfo(), self.cohortNames()) if p else (None, None)
        if p:
            outcomes = cohort["outcomes"] if isinstance(cohort, dict) else []
            if outcomes and p.i3dOutcome not in outcomes:
                p.i3dOutcome = "response" if "response" in outcomes else outcomes[0]
            showComboItems(self.ui.i3dOutcomeComboBox, outcomes, p.i3dOutcome)
            wasBlocked = self.ui.i3dWeightsComboBox.blockSignals(True)
            self.ui.i3dWeightsComboBox.setCurrentIndex([value for value, _ in i3dinputs.WEIGHTS].index(p.i3dWeights))
            self.ui.i3dWeightsComboBox.blockSignals(wasBlocked)
            for lineEdit, parameter in self._pathInputs:
                showPath(lineEdit, getattr(p, parameter))
            self.ui.i3dWeightsFilePathLineEdit.enabled = p.i3dWeights == "file"
            self.ui.i3dClinicalLineEdit.enabled = not p.i3dImageOnly
            showSegmentInput(p, self.ui.i3dSegmentSelector, "i3dSegmentation", "i3dSegmentId")
            self._showModel(p, info)
        self.ui.i3dDeviceLabel.text = "Device: CPU (Use CPU is checked)." if p and p.i3dForceCpu else \
            f"Device: {deviceText(hubSettings().device)}."
        trainProblem = i3dinputs.trainProblem(p, cohort)
        if not self.panel.running:
            self.ui.i3dInputSummaryLabel.text = trainProblem or i3dinputs.trainSummary(p, cohort)
        self.showProblem(self.ui.i3dTrainButton, trainProblem, TRAIN_TIP)
        self.showProblem(self.ui.i3dPredictButton, i3dinputs.predictProblem(p, info), PREDICT_TIP)

    def _showModel(self, p, info):
        """Predict: one volume selector per sequence of the model, labelled with its name; the model in words."""
        sequences = info["sequences"] if isinstance(info, dict) else ["MR volume 1", "MR volume 2"]
        for n in range(1, i3dinputs.VOLUME_SLOTS + 1):
            label, selector = getattr(self.ui, f"i3dVolume{n}Label"), getattr(self.ui, f"i3dVolume{n}Selector")
            label.visible = selector.visible = n <= len(sequences)
            label.text = f"{sequences[n - 1]}:" if n <= len(sequences) else ""
        known = isinstance(info, dict)
        self.ui.i3dSegmentLabel.text = f"Tumour segment ({info['mask']}):" if known else "Tumour segment:"
        haveFile = bool(p.i3dModelPath) and os.path.isfile(p.i3dModelPath)
        self.ui.i3dModelInfoLabel.text = i3dinputs.modelDescription(info) if known else info or (
            "PyTorch is needed to read the model file: it is installed when you press Predict." if haveFile
            else "Choose a model file (dlr_mr.pt or dlr_mr_cf.pt).")

    def _installed(self):
        import RadiotherapyResponse

        if not RadiotherapyResponse.ensureDependencies(DEPENDENCY_GROUPS):
            self.ui.i3dStatusLabel.text = "PyTorch, MONAI, Optuna and scikit-learn are needed: they were not installed."
            return False
        self._cohort.forget()  # read again with the packages now there
        self._model.forget()
        self.updateGUI()
        return True

    # --- training on a cohort: a background job with live loss curves

    def _tried(self, what, action):
        """``action()``, or None after showing why it failed (a dialog and the status label)."""
        try:
            with slicer.util.tryWithErrorDisplay(f"{what} failed."):
                return action()
        except Exception as error:  # noqa: BLE001 - shown by tryWithErrorDisplay, and in the status label
            self.ui.i3dStatusLabel.text = f"Failed: {error}"
            return None

    def onTrainButton(self):
        p = self._parameterNode
        if not self._installed():
            return
        problem = i3dinputs.trainProblem(p, self.cohortNames())  # the manifest may only now be readable
        if problem:
            self.ui.i3dStatusLabel.text = problem
            return
        self._tried("Starting the I3D training", lambda: self._startTraining(p, hubSettings()))

    def _startTraining(self, p, hub):
        weights = i3dinputs.weightsText(p.i3dWeightsFile if p.i3dWeights == "file" else p.i3dWeights)
        out = p.i3dOutputFolder or str(training.defaultOutputFolder(hub.models_folder, TRAINING_PREFIX))
        outcome = p.i3dOutcome
        arguments = i3djobs.trainArguments(
            p.i3dManifest, outcome, out, p.i3dPositive, p.i3dSequences.split(), p.i3dMask.strip(),
            i3dinputs.factorNames(p.i3dClinicalFactors), p.i3dImageOnly, weights, hub.weights_folder,
            i3dinputs.parseNumbers(p.i3dShape, "input size", integer=True),
            i3dinputs.parseNumbers(p.i3dSpacing, "voxel size"), p.i3dTrials, p.i3dMaxEpochs, self.device(),
            overwrite=bool(p.i3dOutputFolder))
        curves = training.startTraining(self.panel, arguments, f"Training the I3D models into {out}...",
                                        "I3D training", slicer.mrmlScene,
                                        lambda result: self._trained(out, outcome, weights, curves),
                                        showChart=showChart, folder=JobFolder("ResponseModelI3DTraining"))
        return curves

    def _trained(self, out, outcome, weights, curves):
        loaded = i3djobs.loadTraining(out, slicer.mrmlScene, outcome, weights, lossChart=False)
        self._setParameter("i3dResultsTable", loaded["results"])
        self._setParameter("i3dLossChart", curves.chart)
        self._setParameter("i3dModelPath", str(loaded["modelPath"] or ""))
        showTable(loaded["results"])
        return i3djobs.summary(loaded)

    # --- prediction of the patient in the scene: a background job

    def onPredictButton(self):
        if not self._installed():
            return
        p, info = self._parameterNode, self.modelInfo()
        model, hub = p.i3dModelPath, hubSettings()
        clinical = self._tried("Reading the clinical values", lambda: i3dinputs.clinicalValues(
            p.i3dClinicalTable, p.i3dPatient, p.i3dClinicalValues))
        if clinical is None:
            return
        volumes = i3dinputs.predictVolumes(p, info)
        folder, exported = self.exportToJobFolder("ResponseModelI3D", lambda path: i3dpredict.exportPatient(
            path, info, volumes, p.i3dSegmentation, p.i3dSegmentId, clinical))
        if folder is None:
            return
        out = folder.file(i3dpredict.PREDICTION_FILE)
        self.panel.start(i3dpredict.predictArguments(exported["manifest"], model, self.device(), hub.weights_folder,
                                                     out), "Predicting...",
                         lambda result: self._predicted(out, model, info, exported),
                         onFailure=lambda result: slicer.util.errorDisplay(
                             f"I3D prediction failed: {result.message}", windowTitle=TITLE),
                         folder=folder, inputs=[*volumes, p.i3dSegmentation], scene=slicer.mrmlScene,
                         cancelledText="Cancelled: nothing was added to the scene.")

    def _predicted(self, out, model, info, exported):
        result = i3dpredict.loadPrediction(out, model, info, exported, slicer.mrmlScene)
        text = i3dpredict.summary(result)
        self.ui.i3dPredictionLabel.text = text
        return text


class ResponseModelI3DLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points, in process (the widget runs the same commands as background jobs)."""

    predict = staticmethod(i3dpredict.predict)  # (model, volumes, segmentation, segment id, clinical, ...) -> dict
    predictionSummary = staticmethod(i3dpredict.summary)
    modelInfo = staticmethod(i3dinputs.modelInfo)
    clinicalValues = staticmethod(i3dinputs.clinicalValues)  # (table node, patient id, "factor=value; ...")

    def getParameterNode(self):
        return ResponseModelI3DParameterNode(super().getParameterNode())

    @staticmethod
    def train(manifest, outcome, out, positive="", sequences=("T1", "T2"), mask="GTVp", clinicalFactors=None,
              imageOnly=False, weights="imagenet", shape=(96, 96, 24), spacing=(1.5, 1.5, 3.0), margin=10.0,
              trials=0, maxEpochs=300, device="auto", weightsFolder=None, seed=0, scene=None, progress=None,
              shouldCancel=None) -> dict:
        """Train and test DLR (MR) and DLR (MR + CF) on a cohort (as ``rtresponse i3d train``) into ``out``; the
        results as nodes (i3djobs.loadTraining). ``progress(stage, done, total)``; ``shouldCancel()`` raises
        ``rtresponse.models.i3d.features.Cancelled`` before any model file is written."""
        from rtresponse.cohort import load_manifest
        from rtresponse.models.i3d.preprocess import VolumeConfig
        from rtresponse.models.i3d.training import HeadConfig
        from rtresponse.models.i3d.workflow import train_cohort
        from rtresponse.settings import resolve_device

        weights = i3dinputs.weightsText(weights)
        config = VolumeConfig(sequences=tuple(sequences), mask=mask, spacing_xyz=tuple(float(v) for v in spacing),
                              shape_xyz=tuple(int(v) for v in shape), margin_mm=float(margin), mode="channels")
        train_cohort(load_manifest(manifest), outcome, out, config, positive, i3dinputs.factorNames(clinicalFactors),
                     imageOnly, weights, weightsFolder, HeadConfig(max_epochs=int(maxEpochs), seed=seed), int(trials),
                     seed=seed, device=resolve_device(device), progress=progress, should_cancel=shouldCancel)
        return i3djobs.loadTraining(out, scene or slicer.mrmlScene, outcome, weights)


class ResponseModelI3DTest(ScriptedLoadableModuleTest):
    SMALL = {"weights": "random", "shape": (32, 32, 8), "spacing": (2.0, 2.0, 3.0), "margin": 4.0}  # plumbing only

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):  # a test whose packages are absent is skipped with a message; the others run
        selftests.runEach(self, (self.test_TrainAndPredict,))

    def test_TrainAndPredict(self):
        """Train in process on a small synthetic cohort, then predict the patient in the scene with the job's
        command (`i3d predict` in PythonSlicer) and in process: the same probability."""
        import tempfile

        from rtresponse import mrml
        from rtresponse.cohort import load_manifest
        from rtresponse.jobs import FINISHED, run
        from rtresponse.sampledata.synthetic import write_cohort
        from RadiotherapyResponseLib.backgroundjob import job_environment, slicer_python

        selftests.requirePackages(self, DEPENDENCY_GROUPS)
        logic = ResponseModelI3DLogic()
        with tempfile.TemporaryDirectory(prefix="ResponseModelI3DTest-", dir=slicer.app.temporaryPath) as folder:
            self.delayDisplay("Training on a small synthetic cohort (random backbone weights, a tiny input)")
            manifest = write_cohort(os.path.join(folder, "cohort"), n_patients=24, seed=0, size=(48, 48, 16))
            loaded = logic.train(manifest, "response", os.path.join(folder, "out"), "1", maxEpochs=3, device="cpu",
                                 clinicalFactors="age sex clin_T_stage N_stage HPV", **self.SMALL)
            self.assertEqual(list(mrml.table_node_to_dataframe(loaded["results"])["model"]),
                             ["DLR (MR)", "DLR (MR + CF)"])
            model = loaded["modelPath"]
            self.assertEqual(len(logic.modelInfo(model)["factors"]), 3)

            self.delayDisplay("Predicting the patient in the scene: in a job, then in process")
            nodes = mrml.load_patient(load_manifest(manifest), "P001", scene=slicer.mrmlScene)
            segmentation = nodes["segmentation"]
            gtvId = segmentation.GetSegmentation().GetSegmentIdBySegmentName("GTVp")
            volumes = [nodes["volumes"]["T1"], nodes["volumes"]["T2"]]
            segmentsBefore = segmentation.GetSegmentation().GetNumberOfSegments()
            clinical = logic.clinicalValues(nodes["clinical"])
            info = logic.modelInfo(model)
            exported = i3dpredict.exportPatient(os.path.join(folder, "job"), info, volumes, segmentation, gtvId,
                                                clinical)
            out = os.path.join(folder, "job", "prediction.csv")
            job = run(i3dpredict.predictArguments(exported["manifest"], model, "cpu", None, out),
                      python=slicer_python(), env=job_environment(), timeout=600)
            self.assertEqual(job.state, FINISHED, job.message)
            fromJob = i3dpredict.loadPrediction(out, model, info, exported, slicer.mrmlScene)
            inProcess = logic.predict(model, volumes, segmentation, gtvId, clinical, device="cpu")
            self.assertAlmostEqual(fromJob["probability"], inProcess["probability"], places=5)
            self.assertIn("Predicted:", logic.predictionSummary(fromJob))
            self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), segmentsBefore)  # only read
        self.delayDisplay("Test passed")
