"""Tumor Features module: handcrafted (PyRadiomics) and deep 2D-CNN features of segments, one table node per run.

A thin widget over RadiotherapyResponseLib: every extraction is an ``rtresponse features`` job in a child process
(progress, Cancel; Slicer stays usable). The Logic measures in process, for scripts.
"""

import logging

import qt
import vtk

import slicer
from RadiotherapyResponseLib import featurejobs, segmentfeatures, segments, selftests, testdata
from RadiotherapyResponseLib.jobfolder import JobFolder
from RadiotherapyResponseLib.jobpanel import JobPanel
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
segment's largest slice, and shows its Grad-CAM map (device and weights folder: the Radiotherapy Response settings).
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Feature extraction by PyRadiomics (van Griethuysen et al., Cancer Research 2017). Presets follow the methods of the
papers implemented by the Radiotherapy Response extension.
"""


@parameterNodeWrapper
class TumorFeaturesParameterNode:
    """Module state, saved with the scene: inputs, preset or PyRadiomics parameter file (overrides the preset), the
    latest table, and the deep-feature network with its weights source ("imagenet", "file" or "random")."""

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

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # Slicer binds a str parameter to a QComboBox only with a Choice annotation, to a ctkPathLineEdit not at all
        for widget, signal, slot in (
                (self.ui.presetComboBox, "currentIndexChanged(int)",
                 lambda index: self._setParameter("preset", self.ui.presetComboBox.itemText(index), index >= 0)),
                (self.ui.parameterFilePathLineEdit, "currentPathChanged(QString)",
                 lambda path: self._setParameter("parameterFile", path)),
                (self.ui.segmentsTableView, "selectionChanged(QItemSelection,QItemSelection)", self.updateGUI),
                (self.ui.runButton, "clicked(bool)", self.onRunButton),
                (self.ui.deepModelComboBox, "currentIndexChanged(int)",
                 lambda index: self._setParameter("deepModel", self.ui.deepModelComboBox.itemText(index), index >= 0)),
                (self.ui.deepWeightsSourceComboBox, "currentIndexChanged(int)",
                 lambda index: self._setParameter("deepWeightsSource", list(DEEP_WEIGHT_SOURCES)[index], index >= 0)),
                (self.ui.deepWeightsFilePathLineEdit, "currentPathChanged(QString)",
                 lambda path: self._setParameter("deepWeightsFile", path)),
                (self.ui.deepRunButton, "clicked(bool)", self.onDeepRunButton),
                (self.ui.deepActivationMapButton, "clicked(bool)", self.onActivationMapButton)):
            widget.connect(signal, slot)
        self.initializeParameterNode()

    def cleanup(self):
        if self.panel:
            self.panel.cancel()  # never leave a child process behind
        self._segmentsObserver.follow(None)
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.ui.segmentEditorWidget.setActiveEffect(None)
        self.ui.segmentEditorWidget.removeViewObservations()
        if self._parameterNode:  # kept: a job that ends while the module is left still records its table
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)

    def onSceneStartClose(self, caller, event):
        self.panel.onSceneStartClose()  # a running job is cancelled: its results belong to the closing scene
        self.setParameterNode(None)
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.ui.segmentEditorWidget.removeViewObservations()

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())
        self.setParameterNode(self.logic.getParameterNode())
        segments.guessInputs(self._parameterNode, slicer.mrmlScene)  # the first volume and segmentation

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

        p, ids, running = self._parameterNode, self.segmentIdsToMeasure(), self.panel.running
        problem, deepProblem = featurejobs.inputProblems(*(
            (p.inputVolume, p.inputSegmentation, len(ids), p.preset, p.parameterFile, handcrafted.list_presets(),
             p.deepModel, deep2d.MODELS, p.deepWeightsSource, p.deepWeightsFile) if p else (None,) * 10))
        selected = len(self.ui.segmentsTableView.selectedSegmentIDs()) if p and p.inputSegmentation else 0
        self.ui.segmentSelectionLabel.text = problem or (
            f"{selected} selected segment(s) will be measured." if selected
            else f"No segment selected: all {len(ids)} will be measured.")
        for button, buttonProblem, tip in (
                (self.ui.runButton, problem, "Compute the features of the selected segments into a new table."),
                (self.ui.deepRunButton, deepProblem,
                 "Compute the deep features of the selected segments into a new table."),
                (self.ui.deepActivationMapButton, deepProblem, "Show the Grad-CAM map of the first selected segment "
                                                               "(the first when none is selected) over the volume.")):
            button.enabled = buttonProblem is None and not running
            button.toolTip = buttonProblem or tip

    def segmentIdsToMeasure(self):
        """The segments selected in the table; all segments when none is selected."""
        p = self._parameterNode
        return segments.segmentIdsToMeasure(self.ui.segmentsTableView, p.inputSegmentation if p else None)

    def _setParameter(self, name, value, valid=True):
        if self._parameterNode and valid:
            setattr(self._parameterNode, name, value)

    def deepWeights(self):
        """The ``weights`` argument of rtresponse.features.deep2d: "imagenet", a file path, or None (random)."""
        return featurejobs.deepWeights(self._parameterNode.deepWeightsSource, self._parameterNode.deepWeightsFile)

    # --- runs: each is a background job -------------------------------------------------------------------------

    def onRunButton(self):
        if self._installed(DEPENDENCY_GROUPS, "PyRadiomics is"):
            p = self._parameterNode
            volume, segmentation, settings = p.inputVolume, p.inputSegmentation, p.parameterFile or p.preset
            self._startFeaturesJob("Measuring {n} segment(s)...", lambda folder, ids: featurejobs.prepareHandcrafted(
                folder, volume, segmentation, ids, settings, hubSettings().workers))

    def onDeepRunButton(self):
        if self._installed(DEEP_DEPENDENCY_GROUPS, "PyTorch, timm and MONAI are"):
            self._withWeights(self._runDeep)

    def onActivationMapButton(self):
        if self._installed(DEEP_DEPENDENCY_GROUPS, "PyTorch, timm and MONAI are"):
            self._withWeights(self._showActivationMap)

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
        self._startFeaturesJob(f"Loading {model} for {{n}} segment(s)...", lambda folder, ids: featurejobs.prepareDeep(
            folder, volume, segmentation, ids, model, weights, hub.device, hub.weights_folder))

    def _startFeaturesJob(self, description, prepare):
        """Export the segments to a new job folder (``prepare(folder, segmentIds)`` -> FeaturesJob) and start the job;
        when it ends, its table is loaded (if the inputs are still in the scene) and shown."""
        p, segmentIds = self._parameterNode, self.segmentIdsToMeasure()
        self.ui.segmentEditorWidget.setActiveEffect(None)
        folder = JobFolder("TumorFeatures")
        try:
            with slicer.util.tryWithErrorDisplay("Could not export the segments for measuring.", waitCursor=True):
                job = prepare(folder.path, segmentIds)
        except Exception as error:
            folder.remove()
            self.ui.statusLabel.text = f"Failed: {error}"
            return
        self.panel.start(job.arguments, description.format(n=len(segmentIds)),
                         lambda result: self._loadTable(job.out, job.tableName, job.attributes),
                         onFailure=lambda result: slicer.util.errorDisplay(
                             f"Feature extraction failed: {result.message}", windowTitle=TITLE),
                         folder=folder, inputs=[p.inputVolume, p.inputSegmentation], scene=slicer.mrmlScene,
                         cancelledText="Cancelled: no table was made.")

    def _loadTable(self, path, name, attributes):
        table = featurejobs.importFeatureTable(path, slicer.mrmlScene.GenerateUniqueName(name), slicer.mrmlScene,
                                               attributes)
        self._setParameter("outputTable", table)
        showTable(table)
        text, noneMeasured = featurejobs.summary(table)
        (logging.warning if "\n" in text else logging.info)(text)
        if noneMeasured:
            slicer.util.warningDisplay(text, windowTitle=TITLE)
        return text

    def _showActivationMap(self):
        """In process (no command makes it yet): Slicer waits ~2 s (resnet18) to ~25 s (inception_resnet_v2, CPU)."""
        p = self._parameterNode
        try:
            with slicer.util.tryWithErrorDisplay("Activation map failed.", waitCursor=True):
                heat = self.logic.showActivationMap(p.inputVolume, p.inputSegmentation, self.segmentIdsToMeasure()[0],
                                                    p.deepModel, self.deepWeights(), hubSettings())
        except Exception as error:
            self.ui.statusLabel.text = text = f"Failed: {error}"
            return text
        self.ui.statusLabel.text = text = f"Activation map: '{heat.GetName()}'."
        return text


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

    def test_BackgroundJob(self):
        """The widget's path: the segments measured by an `rtresponse features` job in PythonSlicer, the table back."""
        from rtresponse import mrml
        from rtresponse.jobs import FINISHED, run
        from RadiotherapyResponseLib.backgroundjob import job_environment, slicer_python

        selftests.requirePackages(self, ["core", "radiomics"])  # the job runs in PythonSlicer: Slicer's packages
        self.delayDisplay("Measuring the segments in a background job")
        volume, segmentation, segmentIds = testdata.sphereScene(slicer.mrmlScene)
        folder = JobFolder("TumorFeaturesTest")
        job = featurejobs.prepareHandcrafted(folder.path, volume, segmentation, segmentIds, "ct-tanaka")
        result = run(job.arguments, python=slicer_python(), env=job_environment(), timeout=600)
        self.assertEqual(result.state, FINISHED, result.message)
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

        self.delayDisplay("Deep features and Grad-CAM (random ResNet-18) of a sphere and an empty segment")
        volume, segmentation, segmentIds = testdata.sphereScene(slicer.mrmlScene)
        settings = Settings(device="cpu", weights_folder=slicer.app.temporaryPath)  # not the user's settings
        logic = TumorFeaturesLogic()
        table = logic.runDeep(volume, segmentation, segmentIds, "resnet18", None, settings)
        self.assertEqual(table.GetName(), "TumorFeaturesTestImage deep features resnet18 (random)")
        frame, names = mrml.table_node_to_dataframe(table), deep2d.feature_names("resnet18")
        self.assertEqual((list(frame.index), list(frame.columns)), (["GTV", "Empty"], names + ["weights", "status"]))
        self.assertEqual(list(frame["status"] != STATUS_OK), [False, True])
        self.assertTrue(np.isfinite(frame.loc["GTV", names].astype(float)).all())

        heat = logic.showActivationMap(volume, segmentation, segmentIds[0], "resnet18", None, settings)
        self.assertEqual(heat.GetImageData().GetDimensions(), volume.GetImageData().GetDimensions())
        for heatValue, ctValue in zip(heat.GetSpacing() + heat.GetOrigin(), volume.GetSpacing() + volume.GetOrigin()):
            self.assertAlmostEqual(heatValue, ctValue, places=5)
        values = slicer.util.arrayFromVolume(heat)  # in [0, 1], on one (axial) slice
        self.assertTrue(0.0 <= values.min() and values.max() <= 1.0 and len(np.unique(np.nonzero(values)[0])) <= 1)
        self.delayDisplay("Test passed")
