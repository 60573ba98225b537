"""Tumor Features module: handcrafted (PyRadiomics) and deep 2D-CNN features of segments, one table node per run.

A thin widget over RadiotherapyResponseLib: every extraction is an ``rtresponse features`` job, every Grad-CAM an
``rtresponse gradcam`` job, in a child process (progress, Cancel; Slicer stays usable). The Logic measures in
process, for scripts.
"""

import logging

import qt

import slicer
from RadiotherapyResponseLib import featurejobs, gradcamjob, segmentfeatures, segments, selftests, testdata
from RadiotherapyResponseLib.jobfolder import JobFolder
from RadiotherapyResponseLib.jobpanel import JobPanel
from RadiotherapyResponseLib.modulewidget import JobModuleWidget
from RadiotherapyResponseLib.slicerutils import hubSettings, showTable
from RadiotherapyResponseLib.weightsjob import withImageNetWeights
from RadiotherapyResponseLib.widgets import showComboText, showPath
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
DEEP_WEIGHT_SOURCES = featurejobs.DEEP_WEIGHT_SOURCES  # saved source -> combo box text
SEGMENT_EDITOR_SINGLETON_TAG = "TumorFeaturesSegmentEditor"  # the embedded editor's own parameter node
STATUS_OK = featurejobs.STATUS_OK
TITLE = "Tumor Features"
GRADCAM_TIP = ("Make the Grad-CAM map of each selected segment (all when none is selected) in the background and "
               "show the first over the volume.")


class TumorFeatures(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = TITLE
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse", "Segmentations"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = """
Handcrafted radiomics (PyRadiomics) of the segments of a segmentation on a volume. Pick the volume, the segmentation
and one or more segments (all when none is selected); draw or correct a GTV with the embedded segment editor; pick a
preset or a PyRadiomics parameter file and press Run: it runs in the background with a progress bar (Cancel stops it
within seconds). Each run makes a new table (rows: segments, columns: features, and a status column saying why a
segment could not be measured). "Deep features (2D CNN)" does the same with a frozen ImageNet network on each
segment's largest slice; "Show activation map" makes the Grad-CAM map of each selected segment, also in the
background, and shows the first over the volume (device and weights folder: the Radiotherapy Response settings).
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Feature extraction by PyRadiomics (van Griethuysen et al., Cancer Research 2017). Presets follow the methods of the
papers implemented by the Radiotherapy Response extension.
"""


@parameterNodeWrapper
class TumorFeaturesParameterNode:
    """Module state, saved with the scene: inputs, preset or PyRadiomics parameter file (overrides the preset), the
    latest table and Grad-CAM map, and the deep-feature network with its weights source ("imagenet", "file" or
    "random")."""

    inputVolume: vtkMRMLScalarVolumeNode
    inputSegmentation: vtkMRMLSegmentationNode
    preset: str = "ct-tanaka"
    parameterFile: str = ""
    outputTable: vtkMRMLTableNode
    outputGradcam: vtkMRMLScalarVolumeNode
    deepModel: str = "inception_resnet_v2"
    deepWeightsSource: str = "imagenet"
    deepWeightsFile: str = ""


class TumorFeaturesWidget(JobModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Segments (table and embedded editor) and three buttons that each start a job; the parameter node, scene
    close and job-folder plumbing are JobModuleWidget's (RadiotherapyResponseLib)."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.panel = self._parameterNode = self._parameterNodeGuiTag = None
        self._segmentsObserver = segments.SegmentsObserver(self.updateGUI)  # what Run measures may change

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
        segments.setUpSegmentEditor(self.ui.segmentEditorWidget, self.logic.getSegmentEditorNode())
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.panel = JobPanel(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton,
                              [self.ui.runButton, self.ui.deepRunButton, self.ui.deepActivationMapButton],
                              onChange=self.updateGUI)

        self.observeScene(slicer.mrmlScene)
        # Slicer binds a str parameter to a QComboBox only with a Choice annotation, to a ctkPathLineEdit not at all
        def chosen(parameter, combo, values=None):  # a combo box's index -> the parameter (none while it is empty)
            return lambda index: index >= 0 and self._setParameter(parameter,
                                                                   values[index] if values else combo.itemText(index))

        for widget, signal, slot in (
                (self.ui.presetComboBox, "currentIndexChanged(int)", chosen("preset", self.ui.presetComboBox)),
                (self.ui.parameterFilePathLineEdit, "currentPathChanged(QString)",
                 lambda path: self._setParameter("parameterFile", path)),
                (self.ui.segmentsTableView, "selectionChanged(QItemSelection,QItemSelection)", self.updateGUI),
                (self.ui.runButton, "clicked(bool)", self.onRunButton),
                (self.ui.deepModelComboBox, "currentIndexChanged(int)", chosen("deepModel", self.ui.deepModelComboBox)),
                (self.ui.deepWeightsSourceComboBox, "currentIndexChanged(int)",
                 chosen("deepWeightsSource", None, list(DEEP_WEIGHT_SOURCES))),
                (self.ui.deepWeightsFilePathLineEdit, "currentPathChanged(QString)",
                 lambda path: self._setParameter("deepWeightsFile", path)),
                (self.ui.deepRunButton, "clicked(bool)", self.onDeepRunButton),
                (self.ui.deepActivationMapButton, "clicked(bool)", self.onActivationMapButton)):
            widget.connect(signal, slot)
        self.initializeParameterNode()

    def cleanup(self):
        self._segmentsObserver.follow(None)
        JobModuleWidget.cleanup(self)

    def exit(self):
        self.ui.segmentEditorWidget.setActiveEffect(None)
        self.ui.segmentEditorWidget.removeViewObservations()
        JobModuleWidget.exit(self)

    def onSceneStartClose(self, caller, event):
        JobModuleWidget.onSceneStartClose(self, caller, event)
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.ui.segmentEditorWidget.removeViewObservations()

    def initializeParameterNode(self):
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())
        JobModuleWidget.initializeParameterNode(self)

    def guessInputs(self, parameterNode):
        segments.guessInputs(parameterNode, slicer.mrmlScene)  # the first volume and segmentation

    def updateGUI(self, *unused):
        """Follow the parameter node: settings, deep settings, segment table and editor, buttons."""
        p = self._parameterNode
        segmentation, volume = (p.inputSegmentation, p.inputVolume) if p else (None, None)
        if p:
            showComboText(self.ui.presetComboBox, p.preset)
            showPath(self.ui.parameterFilePathLineEdit, p.parameterFile)
            self.ui.presetComboBox.enabled = not p.parameterFile
            showComboText(self.ui.deepModelComboBox, p.deepModel)
            showComboText(self.ui.deepWeightsSourceComboBox, DEEP_WEIGHT_SOURCES.get(p.deepWeightsSource, ""))
            combo = self.ui.deepModelComboBox
            combo.toolTip = combo.itemData(combo.currentIndex, qt.Qt.ToolTipRole) or ""
            showPath(self.ui.deepWeightsFilePathLineEdit, p.deepWeightsFile)
            self.ui.deepWeightsFilePathLineEdit.enabled = p.deepWeightsSource == "file"
            settings = hubSettings()
            self.ui.deepSettingsLabel.text = f"device {settings.device}, weights folder {settings.weights_folder}"
        segments.showSegmentation(self.ui.segmentsTableView, self.ui.segmentEditorWidget, segmentation, volume)
        self._segmentsObserver.follow(segmentation)
        self._checkCanApply()

    def _checkCanApply(self):
        from rtresponse.features import deep2d, handcrafted

        p, ids = self._parameterNode, self.segmentIdsToMeasure()
        problem, deepProblem = featurejobs.inputProblems(*(
            (p.inputVolume, p.inputSegmentation, len(ids), p.preset, p.parameterFile, handcrafted.list_presets(),
             p.deepModel, deep2d.MODELS, p.deepWeightsSource, p.deepWeightsFile) if p else (None,) * 10))
        selected = len(self.ui.segmentsTableView.selectedSegmentIDs()) if p and p.inputSegmentation else 0
        self.ui.segmentSelectionLabel.text = problem or (
            f"{selected} selected segment(s) will be measured." if selected
            else f"No segment selected: all {len(ids)} will be measured.")
        self.showProblem(self.ui.runButton, problem, "Compute the features of the selected segments into a new table.")
        self.showProblem(self.ui.deepRunButton, deepProblem,
                         "Compute the deep features of the selected segments into a new table.")
        self.showProblem(self.ui.deepActivationMapButton, deepProblem, GRADCAM_TIP)

    def segmentIdsToMeasure(self):
        """The segments selected in the table; all segments when none is selected."""
        p = self._parameterNode
        return segments.segmentIdsToMeasure(self.ui.segmentsTableView, p.inputSegmentation if p else None)

    def deepWeights(self):
        """The ``weights`` argument of rtresponse.features.deep2d: "imagenet", a file path, or None (random)."""
        return featurejobs.deepWeights(self._parameterNode.deepWeightsSource, self._parameterNode.deepWeightsFile)

    # --- runs: each is a background job -------------------------------------------------------------------------

    def onRunButton(self):
        if self._installed(DEPENDENCY_GROUPS, "PyRadiomics is"):
            p = self._parameterNode
            volume, segmentation, settings = p.inputVolume, p.inputSegmentation, p.parameterFile or p.preset
            self._startJob(lambda folder, ids: featurejobs.prepareHandcrafted(
                folder, volume, segmentation, ids, settings, hubSettings().workers),
                "Measuring {n} segment(s)...", self._loadTable, "Feature extraction", "no table was made")

    def onDeepRunButton(self):
        if self._installed(DEEP_DEPENDENCY_GROUPS, "PyTorch, timm and MONAI are"):
            self._withWeights(self._runDeep)

    def onActivationMapButton(self):
        if self._installed(DEEP_DEPENDENCY_GROUPS, "PyTorch, timm and MONAI are"):
            self._withWeights(self._runGradcam)

    def _installed(self, groups, what):
        import RadiotherapyResponse

        if RadiotherapyResponse.ensureDependencies(groups):
            return True
        self.ui.statusLabel.text = f"{what} needed to compute these features: not installed."
        return False

    def _withWeights(self, action):
        """``action()`` now, or after the ImageNet weights were downloaded in a job (offered when missing)."""
        p = self._parameterNode
        if p.deepWeightsSource != "imagenet":
            return action()
        withImageNetWeights(self.panel, p.deepModel, hubSettings().weights_folder, action, title=TITLE)

    def _runDeep(self):
        p, hub, weights = self._parameterNode, hubSettings(), self.deepWeights()
        volume, segmentation, model = p.inputVolume, p.inputSegmentation, p.deepModel
        self._startJob(lambda folder, ids: featurejobs.prepareDeep(
            folder, volume, segmentation, ids, model, weights, hub.device, hub.weights_folder),
            f"Loading {model} for {{n}} segment(s)...", self._loadTable, "Feature extraction", "no table was made")

    def _runGradcam(self):
        p, hub, weights = self._parameterNode, hubSettings(), self.deepWeights()
        volume, segmentation, model = p.inputVolume, p.inputSegmentation, p.deepModel
        self._startJob(lambda folder, ids: gradcamjob.prepareGradcam(
            folder, volume, segmentation, ids, model, weights, hub.device, hub.weights_folder),
            f"Loading {model} for the Grad-CAM of {{n}} segment(s)...",
            lambda job: self._loadMaps(job, volume, segmentation), "Grad-CAM", "no map was made")

    def _startJob(self, prepare, description, load, what, notMade):
        """Export the segments to a new job folder (``prepare(folder, segmentIds)`` -> a job with ``arguments``) and
        start the job; when it ends with its inputs still in the scene, ``load(job)`` brings its results in."""
        p, segmentIds = self._parameterNode, self.segmentIdsToMeasure()
        self.ui.segmentEditorWidget.setActiveEffect(None)
        folder, job = self.exportToJobFolder("TumorFeatures", lambda path: prepare(path, segmentIds))
        if folder is None:
            return
        self.panel.start(job.arguments, description.format(n=len(segmentIds)), lambda result: load(job),
                         onFailure=lambda result: slicer.util.errorDisplay(f"{what} failed: {result.message}",
                                                                           windowTitle=TITLE),
                         folder=folder, inputs=[p.inputVolume, p.inputSegmentation], scene=slicer.mrmlScene,
                         cancelledText=f"Cancelled: {notMade}.")

    def _loadTable(self, job):
        table = featurejobs.importFeatureTable(job.out, slicer.mrmlScene.GenerateUniqueName(job.tableName),
                                               slicer.mrmlScene, job.attributes)
        self._setParameter("outputTable", table)
        showTable(table)
        text, noneMeasured = featurejobs.summary(table)
        (logging.warning if "\n" in text else logging.info)(text)
        if noneMeasured:
            slicer.util.warningDisplay(text, windowTitle=TITLE)
        return text

    def _loadMaps(self, job, volume, segmentation):
        maps = gradcamjob.importGradcamMaps(job, volume, segmentation, slicer.mrmlScene)
        if maps.nodes:
            self._setParameter("outputGradcam", maps.nodes[0])
        gradcamjob.showMaps(volume, maps)
        return gradcamjob.summary(maps)


class TumorFeaturesLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points, measuring in process (the widget runs the same extraction as a background job)."""

    run = staticmethod(segmentfeatures.measure)  # (volume, segmentation, segmentIds, settings, ...) -> table node
    runDeep = staticmethod(segmentfeatures.measureDeep)  # (..., model, weights, hub settings, ...) -> table node
    showActivationMap = staticmethod(segmentfeatures.showActivationMap)  # (..., segmentId, ...) -> volume node
    failedSegments = staticmethod(featurejobs.failedSegments)
    settingsLabel = staticmethod(featurejobs.settingsLabel)
    showTable = staticmethod(showTable)

    def getParameterNode(self):
        return TumorFeaturesParameterNode(super().getParameterNode())

    @staticmethod
    def getSegmentEditorNode(scene=None):
        """The embedded segment editor's parameter node: this module's own, not the Segment Editor module's."""
        return segments.segmentEditorNode(scene or slicer.mrmlScene, SEGMENT_EDITOR_SINGLETON_TAG)


class TumorFeaturesTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):  # a test whose packages are absent is skipped with a message; the others run
        selftests.runEach(self, (self.test_TwoSegmentsOneEmpty, self.test_Cancel, self.test_BackgroundJob,
                                 self.test_DeepFeaturesRandomWeights))

    def test_TwoSegmentsOneEmpty(self):
        selftests.requirePackages(self, ["core", "radiomics"])
        from rtresponse import mrml

        self.delayDisplay("Extracting features of a sphere and an empty segment")
        volume, segmentation, segmentIds = testdata.sphereScene(slicer.mrmlScene)
        table = TumorFeaturesLogic().run(volume, segmentation, segmentIds, "ct-tanaka")
        self.assertTrue(slicer.mrmlScene.IsNodePresent(table))
        self.assertEqual(table.GetName(), "TumorFeaturesTestImage features (ct-tanaka)")
        testdata.checkSphereTable(mrml.table_node_to_dataframe(table))
        self.assertEqual(list(TumorFeaturesLogic.failedSegments(table)), ["Empty"])
        self.delayDisplay("Test passed")

    def test_Cancel(self):
        selftests.requirePackages(self, ["core", "radiomics"])
        from rtresponse.features import handcrafted

        self.delayDisplay("Cancelling a run")
        volume, segmentation, segmentIds = testdata.sphereScene(slicer.mrmlScene)
        tablesBefore = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode")
        with self.assertRaises(handcrafted.Cancelled):
            TumorFeaturesLogic().run(volume, segmentation, segmentIds, "pyradiomics-default", shouldCancel=lambda: True)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode"), tablesBefore)
        self.delayDisplay("Test passed")

    def _runJob(self, prepare):
        """The widget's path: ``prepare(folder)`` exports the segments, the job runs in PythonSlicer; returns the job
        (its results are read before ``folder.remove()``) and the folder."""
        from rtresponse.jobs import FINISHED, run
        from RadiotherapyResponseLib.backgroundjob import job_environment, slicer_python

        folder = JobFolder("TumorFeaturesTest")
        job = prepare(folder.path)
        result = run(job.arguments, python=slicer_python(), env=job_environment(), timeout=600)
        self.assertEqual(result.state, FINISHED, result.message)
        return job, folder

    def test_BackgroundJob(self):
        """The segments measured by an `rtresponse features` job in PythonSlicer, the table back."""
        from rtresponse import mrml

        selftests.requirePackages(self, ["core", "radiomics"])  # the job runs in PythonSlicer: Slicer's packages
        self.delayDisplay("Measuring the segments in a background job")
        volume, segmentation, segmentIds = testdata.sphereScene(slicer.mrmlScene)
        job, folder = self._runJob(lambda path: featurejobs.prepareHandcrafted(path, volume, segmentation, segmentIds,
                                                                               "ct-tanaka"))
        table = featurejobs.importFeatureTable(job.out, job.tableName, slicer.mrmlScene, job.attributes)
        folder.remove()
        testdata.checkSphereTable(mrml.table_node_to_dataframe(table))
        self.delayDisplay("Test passed")

    def test_DeepFeaturesRandomWeights(self):
        selftests.requirePackages(self, ["core", "deep"])
        import numpy as np
        from rtresponse import mrml
        from rtresponse.features import deep2d
        from rtresponse.settings import Settings

        self.delayDisplay("Deep features (in process) and Grad-CAM (a job), random ResNet-18, a sphere and an empty")
        volume, segmentation, segmentIds = testdata.sphereScene(slicer.mrmlScene)
        settings = Settings(device="cpu", weights_folder=slicer.app.temporaryPath)  # not the user's settings
        table = TumorFeaturesLogic().runDeep(volume, segmentation, segmentIds, "resnet18", None, settings)
        self.assertEqual(table.GetName(), "TumorFeaturesTestImage deep features resnet18 (random)")
        frame, names = mrml.table_node_to_dataframe(table), deep2d.feature_names("resnet18")
        self.assertEqual((list(frame.index), list(frame.columns)), (["GTV", "Empty"], names + ["weights", "status"]))
        self.assertEqual(list(frame["status"] != STATUS_OK), [False, True])
        self.assertTrue(np.isfinite(frame.loc["GTV", names].astype(float)).all())

        job, folder = self._runJob(lambda path: gradcamjob.prepareGradcam(path, volume, segmentation, segmentIds,
                                                                          "resnet18", None, "cpu", None))
        maps = gradcamjob.importGradcamMaps(job, volume, segmentation, slicer.mrmlScene)
        folder.remove()
        self.assertEqual(maps.failed, {"Empty": "mask is empty"})
        heat, = maps.nodes
        self.assertEqual(heat.GetImageData().GetDimensions(), volume.GetImageData().GetDimensions())
        for heatValue, ctValue in zip(heat.GetSpacing() + heat.GetOrigin(), volume.GetSpacing() + volume.GetOrigin()):
            self.assertAlmostEqual(heatValue, ctValue, places=5)
        values = slicer.util.arrayFromVolume(heat)  # in [0, 1], on one (axial) slice
        self.assertTrue(0.0 <= values.min() and values.max() <= 1.0 and len(np.unique(np.nonzero(values)[0])) <= 1)
        self.delayDisplay("Test passed")
