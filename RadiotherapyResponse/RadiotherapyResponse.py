"""Radiotherapy Response hub module: sample data, cohort loading, settings and optional Python packages.

A thin widget over the ``rtresponse`` library, which is imported lazily inside functions so that
loading this module is instant and never installs anything.
"""

import importlib.util
import logging
import os
import tempfile

import qt
import slicer
from RadiotherapyResponseLib import cohortjob, samplejob
from RadiotherapyResponseLib.jobpanel import JobPanel
from RadiotherapyResponseLib.notices import RESEARCH_USE_ONLY
from RadiotherapyResponseLib.samplejob import SAMPLE_KINDS
from RadiotherapyResponseLib.widgets import showComboItems
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

SETTINGS_KEYS = {"device": "RadiotherapyResponse/device", "weights_folder": "RadiotherapyResponse/weightsFolder",
                 "workers": "RadiotherapyResponse/workers", "models_folder": "RadiotherapyResponse/modelsFolder",
                 "scheduler": "RadiotherapyResponse/scheduler"}  # jobs pass it on (RTRESPONSE_SCHEDULER)
PYTORCH_EXTENSION_MISSING = ('PyTorch is installed through the "PyTorch" extension. Install it from the Extensions '
                             "Manager, restart Slicer and try again.")


class RadiotherapyResponse(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Radiotherapy Response"
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = []
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = RESEARCH_USE_ONLY + """
Predicts tumour response to radiotherapy from planning CT, MR and FDG-PET/CT, GTV contours and clinical factors.
This hub module loads sample data and cohorts (a CSV manifest, one row per patient) into the scene, and holds the
settings (compute device, weights folder, workers, models folder) and optional Python packages shared by the other modules.
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Implements four published methods for radiotherapy response prediction: Tanaka et al., Sci Rep 2022
(doi:10.1038/s41598-022-12170-z); Jeong et al., Sci Rep 2024 (doi:10.1038/s41598-024-51742-z); Hua et al., Quant
Imaging Med Surg 2023 (doi:10.21037/qims-22-1226); Kutnár et al., arXiv 2023 (doi:10.48550/arXiv.2308.08396).
Real sample images are PyRadiomics' regression cases. Built on 3D Slicer, SimpleITK, PyRadiomics, PyTorch and MONAI.
"""
        slicer.app.connect("startupCompleted()", registerSampleData)


class _SampleDownloader:
    """Sample Data "download" callback that loads a cohort's first patient (stable repr); it must return at once.

    A cached cohort's patient is loaded now (fast). The first time, the hub's own job panel prepares the cohort in the
    background and loads the patient when the job ends; the hub is shown, with its progress and Cancel. One panel owns
    the job: a second request cannot start a second writer of the cache folder, and no dialog must be kept in step.
    """

    def __init__(self, kind):
        self.kind = kind

    def __call__(self, *args):  # Sample Data passes the source
        widget = slicer.util.getModuleWidget("RadiotherapyResponse")
        nodes = widget.loadOrPrepareSample(self.kind)
        if nodes is None:
            slicer.util.selectModule("RadiotherapyResponse")
        return nodes

    def __repr__(self):
        return f"RadiotherapyResponse sample ({self.kind})"


def registerSampleData():
    """Register the sample cohorts in the Sample Data module."""
    import SampleData

    thumbnail = os.path.join(os.path.dirname(__file__), "Resources", "Icons", "RadiotherapyResponseSample.png")
    for kind, title in SAMPLE_KINDS:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="Radiotherapy response", sampleName=title, uris=[], fileNames=[], nodeNames=[],
            thumbnailFileName=thumbnail, customDownloader=_SampleDownloader(kind))


class RadiotherapyResponseWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._updatingSettingsGUI = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RadiotherapyResponse.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RadiotherapyResponseLogic()
        self.samplePanel = JobPanel(self.ui.sampleProgressBar, self.ui.sampleStatusLabel, self.ui.sampleCancelButton,
                                    [self.ui.loadSampleButton, self.ui.validateButton])  # the hub's jobs

        self.ui.sampleKindComboBox.connect("currentIndexChanged(int)", lambda index: self.ui.samplePatientComboBox.clear())
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSample)
        self.ui.manifestPathLineEdit.connect("currentPathChanged(QString)", self.onManifestChanged)
        self.ui.validateButton.connect("clicked(bool)", self.onValidate)
        self.ui.loadPatientButton.connect("clicked(bool)", self.onLoadPatient)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onSettingsChanged)
        self.ui.weightsFolderLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.workersSpinBox.connect("valueChanged(int)", self.onSettingsChanged)
        self.ui.modelsFolderLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.schedulerLineEdit.connect("editingFinished()", self.onSettingsChanged)
        self.ui.checkDependenciesButton.connect("clicked(bool)", self.onCheckDependencies)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependencies)
        self.updateSettingsGUI()

    def cleanup(self):
        self.samplePanel.cancel()  # never leave a child process behind
        self.removeObservers()

    # Sample data and cohort
    def onLoadSample(self):
        kind = SAMPLE_KINDS[self.ui.sampleKindComboBox.currentIndex][0]
        self.loadOrPrepareSample(kind, self.ui.samplePatientComboBox.currentText or None)

    def loadOrPrepareSample(self, kind, patient=None):
        """Load the patient of sample cohort ``kind`` now when the cohort is cached (returns the nodes); else prepare
        the cohort as a background job that loads the patient when it ends (returns None)."""
        if samplejob.cachedManifest(kind) is not None:
            with slicer.util.tryWithErrorDisplay(f"Failed to load the {kind} sample data.", waitCursor=True):
                return self._loadSample(kind, patient)[0]
        if self.samplePanel.running:
            slicer.util.showStatusMessage("Sample data is being prepared: wait for it or cancel it.", 5000)
            return None
        with slicer.util.tryWithErrorDisplay(f"Failed to prepare the {kind} sample data."):
            self.samplePanel.start(samplejob.prepareArguments(kind), samplejob.preparingText(kind),
                                   lambda result: self._loadSample(kind, patient)[1])
            slicer.util.showStatusMessage(samplejob.preparingText(kind) + " (Radiotherapy Response module)", 5000)
        return None

    def _loadSample(self, kind, patient):
        """Load the patient of the cached cohort (fast, in this process): (the nodes, the status text)."""
        ids, patient, nodes = samplejob.loadSamplePatient(kind, patient, slicer.mrmlScene)
        self.logic.showPatient(nodes)
        showComboItems(self.ui.samplePatientComboBox, ids, patient)
        self.ui.sampleStatusLabel.text = text = samplejob.loadedText(kind, patient)
        slicer.util.showStatusMessage(text, 3000)
        return nodes, text

    def onManifestChanged(self, path):
        self.ui.patientComboBox.clear()
        self.ui.loadPatientButton.enabled = False
        self.ui.cohortStatusLabel.text = "Press Validate to check the manifest." if path else "No manifest selected."

    def onValidate(self):
        """Validate in a background job (every image is read); the problems, or the patients, when it ends."""
        path = self.ui.manifestPathLineEdit.currentPath
        self.onManifestChanged(path)
        self.ui.cohortStatusLabel.text = "Validating..."
        self.samplePanel.start(cohortjob.validateArguments(path), "Validating the manifest...",
                               lambda result: self._validated(path), onFailure=self._invalid)

    def _invalid(self, result):
        problems = cohortjob.problemLines(self.samplePanel.logLines)
        self.ui.cohortStatusLabel.text = cohortjob.problemsText(problems) if problems else result.message

    def _validated(self, path):
        patientIds = cohortjob.patientIds(path)
        showComboItems(self.ui.patientComboBox, patientIds, patientIds[0] if patientIds else "")
        self.ui.loadPatientButton.enabled = bool(patientIds)
        self.ui.cohortStatusLabel.text = text = f"Manifest OK: {len(patientIds)} patient(s)."
        return text

    def onLoadPatient(self):
        path, patient = self.ui.manifestPathLineEdit.currentPath, self.ui.patientComboBox.currentText
        with slicer.util.tryWithErrorDisplay(f"Failed to load patient {patient}.", waitCursor=True):
            self.logic.loadPatient(self.logic.loadCohort(path), patient)

    # Settings
    def updateSettingsGUI(self):
        settings = self.logic.settings()
        self._updatingSettingsGUI = True
        try:
            self.ui.deviceComboBox.setCurrentIndex(max(0, self.ui.deviceComboBox.findText(settings.device)))
            self.ui.weightsFolderLineEdit.currentPath = settings.weights_folder
            self.ui.workersSpinBox.value = settings.workers
            self.ui.modelsFolderLineEdit.currentPath = settings.models_folder
            self.ui.schedulerLineEdit.text = settings.scheduler
        finally:
            self._updatingSettingsGUI = False

    def onSettingsChanged(self, *unused):
        if self._updatingSettingsGUI:
            return
        from rtresponse.settings import Settings

        with slicer.util.tryWithErrorDisplay("Invalid setting."):
            self.logic.saveSettings(Settings.from_dict({
                "device": self.ui.deviceComboBox.currentText,
                "weights_folder": self.ui.weightsFolderLineEdit.currentPath,  # empty: default folder
                "workers": self.ui.workersSpinBox.value,
                "models_folder": self.ui.modelsFolderLineEdit.currentPath,  # empty: default folder
                "scheduler": self.ui.schedulerLineEdit.text.strip()}))  # empty: this computer

    # Python packages
    def onCheckDependencies(self):
        from rtresponse import dependencies

        with slicer.util.tryWithErrorDisplay("Failed to check Python packages.", waitCursor=True):
            missing = self.logic.missingDependencies()
            lines = []
            for group in dependencies.GROUPS:
                names = [r.module for r in missing if r.group == group]
                lines.append(f"{group}: " + (f"missing {', '.join(names)}" if names else "installed"))
            lines += dependencies.version_mismatches(dependencies.GROUPS)
            self.ui.dependencyGroupsLabel.text = "\n".join(lines)

    def onInstallDependencies(self):
        with slicer.util.tryWithErrorDisplay("Failed to install Python packages."):
            if not self.logic.missingDependencies():
                slicer.util.infoDisplay("All optional Python packages are already installed.")
            elif ensureDependencies():
                slicer.util.infoDisplay("Installed. Restart Slicer if a package fails to import.")
        self.onCheckDependencies()


def ensureDependencies(groups=None):
    """Make sure the packages of ``groups`` are importable, installing them only with the user's consent.

    The analysis modules call this on first use (before their first run); True when everything is there.
    """
    logic = RadiotherapyResponseLogic()
    missing = logic.missingDependencies(groups)
    if not missing:
        return True
    if any(r.torch for r in missing) and not logic.pyTorchExtensionAvailable():
        slicer.util.errorDisplay(PYTORCH_EXTENSION_MISSING)
        return False
    from rtresponse import dependencies

    if not slicer.util.confirmOkCancelDisplay(dependencies.consent_text(missing), windowTitle="Install Python packages"):
        return False
    with slicer.util.tryWithErrorDisplay("Failed to install Python packages.", waitCursor=True):
        logic.installDependencies(groups)
    return not logic.missingDependencies(groups)


class RadiotherapyResponseLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points of the hub module; everything that computes lives in ``rtresponse``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)

    def sampleCohort(self, kind="synthetic"):
        """Prepare a sample cohort (``synthetic`` or ``pyradiomics``) in the user cache on first use, in this process
        (for scripts; the module's widget prepares it as a background job), and load it."""
        from rtresponse import cohort, sampledata

        return cohort.load_manifest(sampledata.ensure_sample(samplejob.checkKind(kind)))

    def loadSample(self, kind="synthetic", patient_id=None, show=True):
        """Load one patient of a sample cohort into the scene (default: its first patient); returns the nodes."""
        return self.loadPatient(self.sampleCohort(kind), patient_id, show)

    def validateManifest(self, path):
        """One line per problem in the cohort manifest at ``path``; empty when it is usable."""
        from rtresponse import cohort

        if not path:
            return ["no manifest file selected"]
        return list(cohort.validate_manifest(path))

    def loadCohort(self, path):
        from rtresponse import cohort

        return cohort.load_manifest(path)

    def loadPatient(self, patientCohort, patient_id=None, show=True):
        """Put a patient's images, GTV segmentation and clinical table into the scene; returns the nodes dict."""
        from rtresponse import mrml

        patient_id = patient_id or patientCohort.patient_ids[0]  # the library names an unknown patient
        nodes = mrml.load_patient(patientCohort, patient_id, scene=slicer.mrmlScene)
        if show:
            self.showPatient(nodes)
        return nodes

    @staticmethod
    def showPatient(nodes):
        """Show a loaded patient: its first volume in the slice views, its segmentation visible."""
        volumes = list(nodes["volumes"].values())
        if volumes:
            slicer.util.setSliceViewerLayers(background=volumes[0], fit=True)
        if nodes.get("segmentation") is not None:
            nodes["segmentation"].CreateDefaultDisplayNodes()
            nodes["segmentation"].GetDisplayNode().SetVisibility(True)

    def settings(self):
        """Current settings from Slicer's settings; defaults where unset, and where stored values are invalid."""
        from rtresponse.errors import InputError
        from rtresponse.settings import Settings

        qsettings = qt.QSettings()
        stored = {field: qsettings.value(key) for field, key in SETTINGS_KEYS.items()}
        try:
            return Settings.from_dict(stored)
        except InputError as error:
            logging.warning(f"Ignoring invalid RadiotherapyResponse settings: {error}")
            return Settings()

    def saveSettings(self, settings):
        from rtresponse.settings import Settings

        settings = Settings(**settings.to_dict())  # re-validate: a caller may have changed a field
        qsettings = qt.QSettings()
        for field, key in SETTINGS_KEYS.items():
            qsettings.setValue(key, getattr(settings, field))

    def missingDependencies(self, groups=None):
        """What ``groups`` (all when None; "core" always: pandas is not in Slicer) lack."""
        from rtresponse import dependencies

        return dependencies.missing(["core", *(groups or dependencies.GROUPS)])

    @staticmethod
    def pyTorchExtensionAvailable():
        return importlib.util.find_spec("PyTorchUtils") is not None

    @staticmethod
    def installTorch(**versions):
        """Install torch and torchvision with the PyTorch extension (the only way torch is installed in Slicer), at
        the tested versions (``torchVersionRequirement``, ``torchvisionVersionRequirement``: the consent dialog's)."""
        try:
            import PyTorchUtils
        except ImportError:
            raise RuntimeError(PYTORCH_EXTENSION_MISSING) from None
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, **versions) is None:
            raise RuntimeError("PyTorch was not installed.")

    def installDependencies(self, groups=None):
        """Install what ``groups`` lack (call only after the user agreed); returns what was installed. pip gets a
        constraints file that keeps Slicer's numpy, SimpleITK, requests and VTK (and the torch installed)."""
        from rtresponse import dependencies

        with tempfile.TemporaryDirectory(dir=slicer.app.temporaryPath) as folder:
            return dependencies.install_missing(
                ["core", *(groups or dependencies.GROUPS)], pip_install=slicer.util.pip_install,
                install_torch=self.installTorch, constraints=os.path.join(folder, "constraints.txt"))


class RadiotherapyResponseTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        from RadiotherapyResponseLib.selftests import runEach

        runEach(self, (self.test_LoadSyntheticSample, self.test_Settings_RoundTrip))

    def test_LoadSyntheticSample(self):
        from RadiotherapyResponseLib.selftests import requirePackages

        requirePackages(self, ["core"])  # pandas and pyyaml are not part of Slicer
        self.delayDisplay("Loading the synthetic sample cohort")
        nodes = RadiotherapyResponseLogic().loadSample("synthetic")
        self.assertIsNotNone(samplejob.cachedManifest("synthetic"))  # the widget now loads it without a job
        self.assertTrue(nodes["volumes"])
        for volume in nodes["volumes"].values():
            self.assertIsInstance(volume, slicer.vtkMRMLScalarVolumeNode)
            self.assertTrue(slicer.mrmlScene.IsNodePresent(volume))
            self.assertIsNotNone(volume.GetImageData())
        segmentation = nodes["segmentation"]
        self.assertIsInstance(segmentation, slicer.vtkMRMLSegmentationNode)
        segments = segmentation.GetSegmentation()
        names = [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())]
        self.assertIn("GTVp", names)
        self.assertIsInstance(nodes["clinical"], slicer.vtkMRMLTableNode)
        self.assertGreater(nodes["clinical"].GetNumberOfRows(), 0)
        self.delayDisplay("Test passed")

    def test_Settings_RoundTrip(self):
        from rtresponse.errors import InputError
        from rtresponse.settings import Settings

        logic = RadiotherapyResponseLogic()
        original = logic.settings()
        try:
            wanted = Settings(device="cpu", weights_folder=slicer.app.temporaryPath, workers=3,
                              models_folder=slicer.app.temporaryPath + "/models")
            logic.saveSettings(wanted)
            self.assertEqual(logic.settings(), wanted)
            with self.assertRaises(InputError):
                Settings(device="tpu")
        finally:
            logic.saveSettings(original)
        self.delayDisplay("Test passed")
