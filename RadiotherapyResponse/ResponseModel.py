"""Response Model module: feature selection x classifiers judged by bootstrap or train/test validation, and prediction;
the inflated 3D network (I3D) of MR sequences fused with clinical factors, trained on a cohort and applied to the
current patient.

A thin widget over ``rtresponse.models`` (evaluate, write_outputs, persistence) and ``rtresponse.models.i3d``
(cohort_features, run_study, write_study, predict_images), which are imported lazily inside functions so that loading
this module is instant and never installs anything.
"""

import logging
import os
import re
from typing import Annotated

import qt
import vtk

import slicer
from RadiotherapyResponseLib import i3djobs
from RadiotherapyResponseLib import responsemodel as rm
from RadiotherapyResponseLib import selftests
from RadiotherapyResponseLib.jobfolder import JobFolder
from RadiotherapyResponseLib.jobpanel import JobPanel
from RadiotherapyResponseLib.modulewidget import JobModuleWidget
from RadiotherapyResponseLib.notices import RESEARCH_USE_ONLY, researchUseLabel
from RadiotherapyResponseLib.slicerutils import hubSettings
from slicer import vtkMRMLPlotChartNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

DEPENDENCY_GROUPS = ["modelling"]
PROTOCOLS = ["bootstrap", "split"]
CLINICAL_PREFIX = "clin_"
OUTCOME_PREFIX = "outcome_"
PATIENT_ID = "patient_id"
MAX_ROC_CURVES = 8  # the best curves shown in the chart (all of them are in the results table and roc.png)
ROC_COLORS = [(0.12, 0.47, 0.71), (0.89, 0.10, 0.11), (0.20, 0.63, 0.17), (1.00, 0.50, 0.00),
              (0.42, 0.24, 0.60), (0.65, 0.34, 0.16), (0.97, 0.51, 0.75), (0.09, 0.75, 0.81)]
# I3D (Jeong et al.): PyTorch, MONAI and Optuna, scikit-learn for the split and the LASSO, pandas for the cohort
I3D_DEPENDENCY_GROUPS = ["core", "modelling", "deep"]
I3D_WEIGHTS = (("imagenet", "ImageNet (pretrained ResNet-50, the paper)"),
               ("random", "random (testing only: learns nothing useful)"),
               ("file", "ResNet-50 weights file"))
I3D_VOLUME_SLOTS = 3  # MR volume selectors of Predict: the sequences are the three RGB channels of the network
I3D_LOSS_COLORS = [(0.09, 0.75, 0.81), (0.84, 0.15, 0.16), (0.17, 0.63, 0.17)]  # as loss_curves.png
I3D_TRAIN_TIP = "Compute the I3D features of the cohort, train DLR (MR) and DLR (MR + CF) and test them."
I3D_PREDICT_TIP = "Probability of the model's positive class for the current patient."


class ResponseModel(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Response Model"
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = RESEARCH_USE_ONLY + """
Builds and judges response models. Pick feature tables (table nodes or a CSV file, one row per patient with a
patient_id column), the clinical table (one row per patient: clin_* factors and outcome_* columns), the outcome and
the clinical factors to add, then the protocol: <b>bootstrap</b> (every selector x classifier, 0.632+ bootstrap AUC,
Tanaka et al.) or <b>split</b> (one stratified train/test split, test AUC with DeLong CI, comparison with the first
model, Jeong et al.). Each table is a feature set; with clinical factors, the clinical factors alone and all sets
combined are evaluated too. Run evaluates in a background job (Cancel stops it; the scene stays usable) and makes
a results table, a ROC chart and, for bootstrap, one table per feature set with the grid's AUCs (selector x
classifier), and saves the best model (.skops) with its model card. Predict applies a saved model to the current
patient's features.
<b>Inflated 3D network (I3D)</b> (Jeong et al.): from a cohort manifest, a frozen ResNet-50 inflated to 3D reads the
tumour from MR sequences; DLR (MR) and, with three clinical factors chosen by LASSO, DLR (MR + CF) are trained and
tested on a held-out third of the patients in a background job (results table and loss curves); Predict applies a
saved I3D model to the current patient's MR volumes, tumour segment and clinical values.
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Methods of Tanaka et al. (head and neck, 0.632+ bootstrap over five selectors and five classifiers) and Jeong et al.
(cervical cancer, train/test validation with DeLong, NRI and IDI; inflated 3D ResNet-50 with clinical factors). Built on
scikit-learn, skops, PyTorch, MONAI and Optuna.
"""


@parameterNodeWrapper
class ResponseModelParameterNode:
    """Module state, saved with the scene.

    clinicalTable: one row per patient with clin_* factors and outcome_* columns; outcomeColumn: the outcome;
    clinicalColumns: the clinical factors added to the features; featureCsv: a feature table file used besides the
    checked table nodes; positive: the positive outcome value. protocol, selectors, classifiers, k, nBootstrap,
    forward: the evaluation. outputFolder: where files go (empty: a new temporary folder per run). resultsTable,
    rocChart, modelPath: the latest run's outputs. predictFeatureTable, predictClinicalTable: the patient to predict.

    i3d*: the inflated 3D network. i3dManifest, i3dOutcome (name without outcome_), i3dPositive: the cohort and the
    outcome; i3dSequences (space-separated image names), i3dMask, i3dClinicalFactors (space-separated, empty: every
    clin_ column), i3dImageOnly: the inputs; i3dWeights (imagenet, random or file) and i3dWeightsFile: the backbone;
    i3dShape, i3dSpacing ("x y z"), i3dTrials, i3dMaxEpochs, i3dOutputFolder, i3dForceCpu: the training;
    i3dResultsTable, i3dLossChart: the latest training's outputs. i3dModelPath, i3dVolume1-3 (the model's sequences
    in order), i3dSegmentation/i3dSegmentId, i3dClinicalTable, i3dPatient, i3dClinicalValues ("factor=value; ..."):
    the patient to predict.
    """

    clinicalTable: vtkMRMLTableNode
    outcomeColumn: str = ""
    clinicalColumns: list[str]
    featureCsv: str = ""
    positive: str = "1"
    protocol: Annotated[str, Choice(PROTOCOLS)] = "bootstrap"
    selectors: list[str]
    classifiers: list[str]
    methodDefaultsApplied: bool = False
    k: Annotated[int, WithinRange(1, 200)] = 10
    nBootstrap: Annotated[int, WithinRange(10, 100000)] = 1000
    forward: bool = True
    outputFolder: str = ""
    resultsTable: vtkMRMLTableNode
    rocChart: vtkMRMLPlotChartNode
    modelPath: str = ""
    predictFeatureTable: vtkMRMLTableNode
    predictClinicalTable: vtkMRMLTableNode
    i3dManifest: str = ""
    i3dOutcome: str = ""
    i3dPositive: str = ""
    i3dSequences: str = "T1 T2"
    i3dMask: str = "GTVp"
    i3dClinicalFactors: str = ""
    i3dImageOnly: bool = False
    i3dWeights: Annotated[str, Choice([value for value, _ in I3D_WEIGHTS])] = "imagenet"
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


class ResponseModelWidget(JobModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedClinicalTable = None
        self.panel = None  # the evaluation's JobPanel (a background job), made in setup()
        self.i3dPanel = None  # the same for I3D training
        self._i3dRun = None  # RadiotherapyResponse.CancellableRun of I3D prediction (in Slicer's GUI thread)
        self._methodNames = ([], [])
        self._i3dCohortCache = (None, None)  # (manifest file version, its names or a problem)
        self._i3dModelCache = (None, None)  # (model file version, what it needs or a problem)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ResponseModel.ui"))
        self.layout.addWidget(researchUseLabel())
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = ResponseModelLogic()
        self._methodNames = self.logic.methodNames()
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.panel = JobPanel(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton,
                              [self.ui.runButton, self.ui.predictButton, self.ui.i3dTrainButton,
                               self.ui.i3dPredictButton], onChange=self.updateGUI)
        self.observeScene(slicer.mrmlScene)
        # Bound through SlicerParameterName in the .ui: clinical table, positive class, protocol, k, bootstrap count,
        # forward selection and the node selectors. The widgets below hold str or list[str] parameters that Slicer
        # cannot bind (a QComboBox filled from the table, checkable lists, ctkPathLineEdit), so they are synchronised
        # here; the checked feature tables are GUI state only.
        self.ui.featureTablesSelector.connect("checkedNodesChanged()", self.updateGUI)
        self.ui.featureCsvPathLineEdit.connect("currentPathChanged(QString)", self.onFeatureCsvChanged)
        self.ui.outcomeComboBox.connect("currentIndexChanged(int)", self.onOutcomeChanged)
        self.ui.clinicalFactorsListWidget.connect("itemChanged(QListWidgetItem*)", self.onClinicalFactorsChanged)
        self.ui.selectorsListWidget.connect("itemChanged(QListWidgetItem*)", self.onSelectorsChanged)
        self.ui.classifiersListWidget.connect("itemChanged(QListWidgetItem*)", self.onClassifiersChanged)
        self.ui.outputFolderPathLineEdit.connect("currentPathChanged(QString)", self.onOutputFolderChanged)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelPathChanged)
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.predictButton.connect("clicked(bool)", self.onPredictButton)

        # I3D: line edits, check boxes, spin boxes and node selectors are bound in the .ui; the manifest's outcomes,
        # the weights choice, the paths and the tumour segment are synchronised here.
        for _value, text in I3D_WEIGHTS:
            self.ui.i3dWeightsComboBox.addItem(text)
        self.ui.i3dProgressBar.hide()
        self.ui.i3dManifestPathLineEdit.connect("currentPathChanged(QString)", self.onI3DManifestChanged)
        self.ui.i3dOutcomeComboBox.connect("currentIndexChanged(int)", self.onI3DOutcomeChanged)
        self.ui.i3dWeightsComboBox.connect("currentIndexChanged(int)", self.onI3DWeightsChanged)
        self.ui.i3dWeightsFilePathLineEdit.connect("currentPathChanged(QString)", self.onI3DWeightsFileChanged)
        self.ui.i3dOutputFolderPathLineEdit.connect("currentPathChanged(QString)", self.onI3DOutputFolderChanged)
        self.ui.i3dModelPathLineEdit.connect("currentPathChanged(QString)", self.onI3DModelPathChanged)
        self.ui.i3dSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                           lambda node: self.onI3DSegmentChanged("i3dSegmentation", node))
        self.ui.i3dSegmentSelector.connect("currentSegmentChanged(QString)",
                                           lambda segmentId: self.onI3DSegmentChanged("i3dSegmentId", segmentId))
        self.ui.i3dTrainButton.connect("clicked(bool)", self.onI3DTrainButton)
        self.ui.i3dPredictButton.connect("clicked(bool)", self.onI3DPredictButton)
        import RadiotherapyResponse

        self._i3dRun = RadiotherapyResponse.CancellableRun(
            self.ui.i3dCancelButton, self.ui.i3dProgressBar, self.ui.i3dStatusLabel,
            [self.ui.inputsCollapsibleButton,
             self.ui.settingsCollapsibleButton,
             self.ui.outputsCollapsibleButton,
             self.ui.predictCollapsibleButton,
             self.ui.i3dTrainGroupBox,
             self.ui.i3dPredictGroupBox],
            progressText="{done} of {total}...",
            cancelText="Cancelling at the next patient...", onChange=self.updateGUI)
        self.i3dPanel = JobPanel(self.ui.i3dProgressBar, self.ui.i3dStatusLabel, self.ui.i3dCancelButton,
                                 [self.ui.runButton, self.ui.predictButton, self.ui.i3dTrainButton,
                                  self.ui.i3dPredictButton], onChange=self.updateGUI)
        self.initializeParameterNode()

    def cleanup(self):
        if self.i3dPanel:
            self.i3dPanel.cancel()  # never leave a child process behind
        JobModuleWidget.cleanup(self)

    def onSceneStartClose(self, caller, event):
        if self.i3dPanel:
            self.i3dPanel.onSceneStartClose()
        JobModuleWidget.onSceneStartClose(self, caller, event)

    def guessInputs(self, p):
        if not p.methodDefaultsApplied:  # the papers' selectors and classifiers, once per scene
            selectors, classifiers = self.logic.paperMethods()
            p.selectors, p.classifiers, p.methodDefaultsApplied = list(selectors), list(classifiers), True
        # Save the user a few clicks: the first table with outcome columns is the clinical table
        if not p.clinicalTable:
            for table in slicer.util.getNodesByClass("vtkMRMLTableNode"):
                if any(c.startswith(OUTCOME_PREFIX) for c in self.logic.tableColumns(table)):
                    p.clinicalTable = table
                    break

    # --- keeping the widgets and the parameter node in step

    def updateGUI(self, *unused):
        """Follow the parameter node: outcome and clinical factor lists, method lists, paths, buttons."""
        p = self._parameterNode
        if p is None:
            self._checkCanApply()
            return
        self._observeClinicalTable(p.clinicalTable)
        columns = self.logic.tableColumns(p.clinicalTable)
        outcomes = [c for c in columns if c.startswith(OUTCOME_PREFIX)]
        if outcomes and p.outcomeColumn not in outcomes:
            p.outcomeColumn = outcomes[0]  # (updates the GUI once more, with a consistent state)
        combo = self.ui.outcomeComboBox
        wasBlocked = combo.blockSignals(True)
        if [combo.itemText(i) for i in range(combo.count)] != outcomes:
            combo.clear()
            combo.addItems(outcomes)
        combo.setCurrentIndex(combo.findText(p.outcomeColumn))
        combo.blockSignals(wasBlocked)
        self._setCheckList(self.ui.clinicalFactorsListWidget, [c for c in columns if c.startswith(CLINICAL_PREFIX)],
                           p.clinicalColumns)
        selectorNames, classifierNames = self._methodNames
        self._setCheckList(self.ui.selectorsListWidget, selectorNames, p.selectors)
        self._setCheckList(self.ui.classifiersListWidget, classifierNames, p.classifiers)
        for lineEdit, path in ((self.ui.featureCsvPathLineEdit, p.featureCsv),
                               (self.ui.outputFolderPathLineEdit, p.outputFolder),
                               (self.ui.modelPathLineEdit, p.modelPath)):
            if lineEdit.currentPath != path:
                wasBlocked = lineEdit.blockSignals(True)
                lineEdit.currentPath = path
                lineEdit.blockSignals(wasBlocked)
        bootstrap = p.protocol == "bootstrap"
        self.ui.bootstrapSpinBox.enabled = bootstrap  # the split protocol has no bootstrap and no forward selection
        self.ui.forwardCheckBox.enabled = bootstrap
        self._updateI3DGUI()
        self._checkCanApply()

    @staticmethod
    def _setCheckList(listWidget, names, checked):
        """Show ``names`` as checkable items (rebuilt only when they change), checked where in ``checked``."""
        wasBlocked = listWidget.blockSignals(True)
        if [listWidget.item(i).text() for i in range(listWidget.count)] != list(names):
            listWidget.clear()
            for name in names:
                item = qt.QListWidgetItem(name)
                item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
                listWidget.addItem(item)
        checked = set(checked or [])
        for i in range(listWidget.count):
            item = listWidget.item(i)
            state = qt.Qt.Checked if item.text() in checked else qt.Qt.Unchecked
            if item.checkState() != state:
                item.setCheckState(state)
        listWidget.blockSignals(wasBlocked)

    @staticmethod
    def _checkedItems(listWidget):
        return [listWidget.item(i).text() for i in range(listWidget.count)
                if listWidget.item(i).checkState() == qt.Qt.Checked]

    def _observeClinicalTable(self, table):
        """Columns added to or removed from the clinical table change the outcome and factor lists."""
        if table is self._observedClinicalTable:
            return
        if self._observedClinicalTable:
            self.removeObserver(self._observedClinicalTable, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
        self._observedClinicalTable = table
        if table:
            self.addObserver(table, vtk.vtkCommand.ModifiedEvent, self.updateGUI)

    def featureTables(self):
        """{name: table node or CSV path} of the checked table nodes and the CSV file."""
        tables = {}
        for node in self.ui.featureTablesSelector.checkedNodes():
            tables[self._uniqueName(node.GetName(), tables)] = node
        csv = self._parameterNode.featureCsv if self._parameterNode else ""
        if csv:
            tables[self._uniqueName(os.path.splitext(os.path.basename(csv))[0], tables)] = csv
        return tables

    @staticmethod
    def _uniqueName(name, taken):
        unique, number = name, 2
        while unique in taken:
            unique, number = f"{name} ({number})", number + 1
        return unique

    def clinicalColumns(self):
        """The checked clinical factors that the current clinical table has."""
        p = self._parameterNode
        columns = self.logic.tableColumns(p.clinicalTable)
        return [c for c in columns if c in set(p.clinicalColumns)]

    def runProblem(self):
        """Why Run cannot start, or None."""
        p = self._parameterNode
        if p is None:
            return "No parameter node."
        if not p.clinicalTable:
            return "Select the clinical table (one row per patient, with outcome_* columns)."
        if p.outcomeColumn not in self.logic.tableColumns(p.clinicalTable):
            return f"'{p.clinicalTable.GetName()}' has no outcome_* column: pick the table with the outcomes."
        if p.featureCsv and not os.path.isfile(p.featureCsv):
            return f"The feature CSV file does not exist: {p.featureCsv}"
        if not self.featureTables() and not self.clinicalColumns():
            return "Check one or more feature tables, choose a CSV file, or check clinical factors."
        if not p.selectors:
            return "Check at least one feature selector."
        if not p.classifiers:
            return "Check at least one classifier."
        return None

    def _checkCanApply(self):
        problem = self.runProblem()
        p = self._parameterNode
        if problem:
            self.ui.inputSummaryLabel.text = problem
        else:
            tables = self.featureTables()
            sets = self.logic.featureSetNames(list(tables), bool(self.clinicalColumns()))
            models = len(sets) * len(p.selectors) * len(p.classifiers)
            self.ui.inputSummaryLabel.text = (f"{len(sets)} feature set(s) ({', '.join(sets)}) x {len(p.selectors)} "
                                              f"selector(s) x {len(p.classifiers)} classifier(s) = {models} model(s).")
        self.ui.runButton.enabled = problem is None and not self._running
        self.ui.runButton.toolTip = problem or ("Evaluate every feature set x selector x classifier and save the best "
                                                "model.")
        predictProblem = self.predictProblem()
        self.ui.predictButton.enabled = predictProblem is None and not self._running
        self.ui.predictButton.toolTip = predictProblem or "Apply the model to the rows of the patient's feature table."
        i3dProblem = self.i3dTrainProblem()
        if not self._running:
            self.ui.i3dInputSummaryLabel.text = i3dProblem or self.i3dTrainSummary()
        self.ui.i3dTrainButton.enabled = i3dProblem is None and not self._running
        self.ui.i3dTrainButton.toolTip = i3dProblem or I3D_TRAIN_TIP
        i3dPredictProblem = self.i3dPredictProblem()
        self.ui.i3dPredictButton.enabled = i3dPredictProblem is None and not self._running
        self.ui.i3dPredictButton.toolTip = i3dPredictProblem or I3D_PREDICT_TIP

    def predictProblem(self):
        p = self._parameterNode
        if p is None:
            return "No parameter node."
        if not p.modelPath or not os.path.isfile(p.modelPath):
            return "Choose a model file (.skops), e.g. the one saved by Run."
        if not p.predictFeatureTable:
            return "Select the patient's feature table."
        return None

    def onFeatureCsvChanged(self, path):
        if self._parameterNode:
            self._parameterNode.featureCsv = path

    def onOutputFolderChanged(self, path):
        if self._parameterNode:
            self._parameterNode.outputFolder = path

    def onModelPathChanged(self, path):
        if self._parameterNode:
            self._parameterNode.modelPath = path

    def onOutcomeChanged(self, index):
        if self._parameterNode and index >= 0:
            self._parameterNode.outcomeColumn = self.ui.outcomeComboBox.itemText(index)

    def onClinicalFactorsChanged(self, item=None):
        if self._parameterNode:
            self._parameterNode.clinicalColumns = self._checkedItems(self.ui.clinicalFactorsListWidget)

    def onSelectorsChanged(self, item=None):
        if self._parameterNode:
            self._parameterNode.selectors = self._checkedItems(self.ui.selectorsListWidget)

    def onClassifiersChanged(self, item=None):
        if self._parameterNode:
            self._parameterNode.classifiers = self._checkedItems(self.ui.classifiersListWidget)

    # --- running

    @property
    def _running(self):
        return any(run is not None and run.running for run in (self.panel, self.i3dPanel, self._i3dRun))

    def onRunButton(self):
        """Evaluate in a background job: the checked tables and the clinical table go to a job folder, `rtresponse
        evaluate` runs with the hub's Workers and its results come back as nodes (see responsemodel)."""
        import RadiotherapyResponse

        if not RadiotherapyResponse.ensureDependencies(DEPENDENCY_GROUPS):
            self.ui.statusLabel.text = "scikit-learn and skops are needed to build models: they were not installed."
            return
        self._methodNames = self.logic.methodNames()  # every selector is listed once scikit-learn is there
        self.updateGUI()
        p = self._parameterNode
        selectorNames, classifierNames = self._methodNames
        tables, outcomeColumn, protocol = self.featureTables(), p.outcomeColumn, p.protocol
        folder, written = self.exportToJobFolder(
            "ResponseModel", lambda path: rm.exportInputs(path, tables, p.clinicalTable, outcomeColumn))
        if folder is None:
            return
        base = p.outputFolder or os.path.join(slicer.app.temporaryPath, "ResponseModel")
        out = rm.resultsFolder(base, outcomeColumn)
        arguments = rm.evaluateArguments(
            written["manifest"], written["features"], outcomeColumn, out, self.clinicalColumns(), protocol,
            [s for s in selectorNames if s in p.selectors], [c for c in classifierNames if c in p.classifiers],
            p.k, p.nBootstrap, p.forward, p.positive, jobs=hubSettings().workers)
        inputs = [node for node in [*tables.values(), p.clinicalTable] if hasattr(node, "GetID")]
        self.panel.start(arguments, "Evaluating models...",
                         lambda result: self._showEvaluation(out, outcomeColumn, protocol),
                         onFailure=lambda result: slicer.util.errorDisplay(
                             f"Model evaluation failed: {result.message}", windowTitle="Response Model"),
                         folder=folder, inputs=inputs, scene=slicer.mrmlScene,
                         cancelledText="Cancelled: nothing was added to the scene.")

    def _showEvaluation(self, out, outcomeColumn, protocol):
        loaded = rm.loadResults(out, outcomeColumn, slicer.mrmlScene, protocol)
        p = self._parameterNode
        if p is not None:
            p.resultsTable, p.rocChart, p.modelPath = loaded["results"], loaded["roc"], str(loaded["model"])
        card = loaded["card"]
        self.ui.predictionLabel.text = (f"Model: {card.get('description', '')}; {card.get('probability', '')}, "
                                        f"cut-off {float(card.get('cutoff', 0.5)):.3g}.")
        self.logic.showTableAndChart(loaded["results"], loaded["roc"])
        return rm.summary(loaded)

    def onPredictButton(self):
        import RadiotherapyResponse

        if not RadiotherapyResponse.ensureDependencies(DEPENDENCY_GROUPS):
            self.ui.predictionLabel.text = "scikit-learn and skops are needed to load models: they were not installed."
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Prediction failed.", waitCursor=True):
            try:
                prediction = self.logic.predict(p.modelPath, p.predictFeatureTable, p.predictClinicalTable)
            except Exception as error:
                self.ui.predictionLabel.text = f"Failed: {error}"
                raise
            self.ui.predictionLabel.text = self.logic.predictionSummary(prediction)
            table = slicer.mrmlScene.GetNodeByID(prediction.attrs.get("tableNodeID", ""))
            if table:
                self.logic.showTable(table)

    # --- inflated 3D network (I3D): keeping the widgets and the parameter node in step

    hubSettings = staticmethod(hubSettings)  # the hub's device, weights folder, workers

    def i3dDevice(self):
        """"cpu" when Use CPU is checked, else the Radiotherapy Response device setting (auto, cpu or cuda)."""
        p = self._parameterNode
        return "cpu" if p is not None and p.i3dForceCpu else self.hubSettings().device

    def i3dDeviceText(self):
        if self._parameterNode is not None and self._parameterNode.i3dForceCpu:
            return "Device: CPU (Use CPU is checked)."
        device = self.hubSettings().device
        if device == "auto":
            return "Device: auto, CUDA when PyTorch sees a GPU, else CPU (Radiotherapy Response settings)."
        return f"Device: {device} (Radiotherapy Response settings)."

    @staticmethod
    def _fileVersion(path):
        """What changes when the file at ``path`` changes (None when it cannot be read)."""
        try:
            return (path, os.path.getmtime(path), os.path.getsize(path))
        except OSError:
            return None

    def i3dCohortNames(self):
        """The I3D manifest's names (dict, read once per file version), a problem (str), or None when the manifest
        cannot be read yet because Python packages are missing (Train installs them)."""
        path = self._parameterNode.i3dManifest if self._parameterNode else ""
        version = self._fileVersion(path) if path else None
        if version is None:
            return f"The manifest file cannot be read: {path}" if path else "Choose the cohort manifest (CSV)."
        if self._i3dCohortCache[0] != version:
            try:
                names = self.logic.cohortNames(path)
            except ImportError:
                names = None
            except Exception as error:  # any unusable manifest: one line on the label
                names = f"The manifest cannot be used: {error}"
            self._i3dCohortCache = (version, names)
        return self._i3dCohortCache[1]

    def i3dModelInfo(self):
        """What the chosen I3D model needs (dict, read once per file version), a problem (str), or None without a
        model file or while PyTorch is missing (Predict installs it)."""
        path = self._parameterNode.i3dModelPath if self._parameterNode else ""
        version = self._fileVersion(path) if path else None
        if version is None:
            return None
        if self._i3dModelCache[0] != version:
            try:
                info = self.logic.i3dModelInfo(path)
            except ImportError:
                info = None
            except Exception as error:
                info = f"The model file cannot be used: {error}"
            self._i3dModelCache = (version, info)
            if isinstance(info, dict):  # a new model: pick its inputs from the scene where none are chosen yet
                self.logic.guessI3DInputs(self._parameterNode, info)
        return self._i3dModelCache[1]

    def _updateI3DGUI(self):
        import RadiotherapyResponse

        p = self._parameterNode
        info = self.i3dModelInfo()  # first: a new model may fill inputs (and update the GUI once more)
        cohort = self.i3dCohortNames()
        outcomes = cohort["outcomes"] if isinstance(cohort, dict) else []
        if outcomes and p.i3dOutcome not in outcomes:
            p.i3dOutcome = "response" if "response" in outcomes else outcomes[0]
        combo = self.ui.i3dOutcomeComboBox
        wasBlocked = combo.blockSignals(True)
        if [combo.itemText(i) for i in range(combo.count)] != outcomes:
            combo.clear()
            combo.addItems(outcomes)
        combo.setCurrentIndex(combo.findText(p.i3dOutcome))
        combo.blockSignals(wasBlocked)
        weights = [value for value, _ in I3D_WEIGHTS]
        combo = self.ui.i3dWeightsComboBox
        wasBlocked = combo.blockSignals(True)
        combo.setCurrentIndex(weights.index(p.i3dWeights) if p.i3dWeights in weights else 0)
        combo.blockSignals(wasBlocked)
        for lineEdit, path in ((self.ui.i3dManifestPathLineEdit, p.i3dManifest),
                               (self.ui.i3dWeightsFilePathLineEdit, p.i3dWeightsFile),
                               (self.ui.i3dOutputFolderPathLineEdit, p.i3dOutputFolder),
                               (self.ui.i3dModelPathLineEdit, p.i3dModelPath)):
            if lineEdit.currentPath != path:
                wasBlocked = lineEdit.blockSignals(True)
                lineEdit.currentPath = path
                lineEdit.blockSignals(wasBlocked)
        self.ui.i3dWeightsFilePathLineEdit.enabled = p.i3dWeights == "file"
        self.ui.i3dClinicalLineEdit.enabled = not p.i3dImageOnly
        self.ui.i3dDeviceLabel.text = self.i3dDeviceText()
        RadiotherapyResponse.showSegmentInput(p, self.ui.i3dSegmentSelector, "i3dSegmentation", "i3dSegmentId")
        # Predict: one volume selector per sequence of the model, labelled with the sequence's name
        sequences = info["sequences"] if isinstance(info, dict) else ["MR volume 1", "MR volume 2"]
        for n in range(1, I3D_VOLUME_SLOTS + 1):
            label, selector = getattr(self.ui, f"i3dVolume{n}Label"), getattr(self.ui, f"i3dVolume{n}Selector")
            shown = n <= len(sequences)
            label.visible = selector.visible = shown
            if shown:
                label.text = f"{sequences[n - 1]}:" if isinstance(info, dict) else f"MR volume {n}:"
        if isinstance(info, dict):
            self.ui.i3dSegmentLabel.text = f"Tumour segment ({info['mask']}):"
            self.ui.i3dModelInfoLabel.text = self.logic.i3dModelDescription(info)
        else:
            self.ui.i3dSegmentLabel.text = "Tumour segment:"
            haveFile = bool(p.i3dModelPath) and os.path.isfile(p.i3dModelPath)
            self.ui.i3dModelInfoLabel.text = info or (
                "PyTorch is needed to read the model file: it is installed when you press Predict." if haveFile
                else "Choose a model file (dlr_mr.pt or dlr_mr_cf.pt).")

    def i3dTrainProblem(self):
        """Why I3D Train cannot start, or None."""
        from rtresponse.errors import InputError

        p = self._parameterNode
        if p is None:
            return "No parameter node."
        if not p.i3dManifest:
            return "Choose the cohort manifest (CSV): one row per patient with the MR images, the tumour mask, clin_ " \
                   "factors and outcome_ columns."
        cohort = self.i3dCohortNames()
        if isinstance(cohort, str):
            return cohort
        sequences = p.i3dSequences.split()
        if not sequences:
            return "Type the MR sequences: manifest image names separated by spaces, e.g. T1 T2."
        if len(sequences) > I3D_VOLUME_SLOTS:
            return f"At most {I3D_VOLUME_SLOTS} MR sequences (the network's three colour channels)."
        if not p.i3dMask.strip():
            return "Type the tumour mask's name (a manifest mask name, e.g. GTVp)."
        if cohort is not None:  # None: the manifest is read once the packages are installed (by Train)
            if not cohort["outcomes"]:
                return "The manifest has no outcome_ column: nothing to predict."
            missing = [s for s in sequences if s not in cohort["images"]]
            if missing:
                return (f"The manifest has no image {', '.join(missing)} (its images: "
                        f"{', '.join(cohort['images']) or 'none'}).")
            if p.i3dMask.strip() not in cohort["masks"]:
                return (f"The manifest has no mask {p.i3dMask.strip()} (its masks: "
                        f"{', '.join(cohort['masks']) or 'none'}).")
            unknown = [f for f in self.logic.factorNames(p.i3dClinicalFactors) if f not in cohort["clinical"]]
            if unknown and not p.i3dImageOnly:
                return (f"The manifest has no clinical factor {', '.join(unknown)} (its clin_ columns: "
                        f"{', '.join(cohort['clinical']) or 'none'}).")
        if p.i3dWeights == "file" and not os.path.isfile(p.i3dWeightsFile):
            return "Choose the ResNet-50 weights file, or other backbone weights."
        try:
            self.logic.parseNumbers(p.i3dShape, "input size", integer=True)
            self.logic.parseNumbers(p.i3dSpacing, "voxel size")
        except InputError as error:
            return f"{str(error)[:1].upper()}{str(error)[1:]}."
        return None

    def i3dTrainSummary(self):
        """One line on what Train will do (when it can start)."""
        p = self._parameterNode
        cohort = self.i3dCohortNames()
        sequences = " + ".join(p.i3dSequences.split())
        text = (f"{cohort['patients']} patient(s): " if isinstance(cohort, dict) else "") + (
            f"{sequences} around {p.i3dMask.strip()}, {' x '.join(p.i3dShape.split())} voxels of "
            f"{' x '.join(p.i3dSpacing.split())} mm; ")
        if p.i3dImageOnly:
            text += "image only (DLR (MR)); "
        else:
            factors = self.logic.factorNames(p.i3dClinicalFactors)
            count = len(factors) if factors else len(cohort["clinical"]) if isinstance(cohort, dict) else None
            text += (f"DLR (MR) and DLR (MR + CF), 3 of {count if count is not None else 'all'} clinical factor(s) "
                     "chosen by LASSO; ")
        text += f"{p.i3dTrials or 'no'} Optuna trial(s), at most {p.i3dMaxEpochs} epochs."
        if p.i3dWeights == "random":
            text += " Random backbone weights: for testing the pipeline only."
        if cohort is None:
            text += " Python packages needed to read the manifest are installed when you press Train."
        return text

    def i3dPredictProblem(self):
        """Why I3D Predict cannot start, or None."""
        p = self._parameterNode
        if p is None:
            return "No parameter node."
        if not p.i3dModelPath or not os.path.isfile(p.i3dModelPath):
            return "Choose an I3D model file (dlr_mr.pt or dlr_mr_cf.pt), e.g. the one saved by Train."
        info = self.i3dModelInfo()
        if isinstance(info, str):
            return info
        sequences = info["sequences"] if info else ["MR volume 1"]  # without PyTorch the model is read on Predict
        if len(sequences) > I3D_VOLUME_SLOTS:
            return (f"The model reads {len(sequences)} sequences; this module shows {I3D_VOLUME_SLOTS} volume "
                    "selectors (use 'rtresponse i3d predict').")
        volumes = [getattr(p, f"i3dVolume{n}") for n in range(1, len(sequences) + 1)]
        for sequence, volume in zip(sequences, volumes):
            if volume is None:
                return f"Select the patient's {sequence} volume."
        if len({volume.GetID() for volume in volumes}) < len(volumes):
            return "Select a different volume for each sequence."
        if not p.i3dSegmentation or not p.i3dSegmentId or \
                p.i3dSegmentation.GetSegmentation().GetSegment(p.i3dSegmentId) is None:
            return f"Select the tumour segment ({info['mask']})." if info else "Select the tumour segment."
        if info and info["factors"] and not p.i3dClinicalTable and not p.i3dClinicalValues.strip():
            return (f"This model needs the clinical factors {', '.join(info['factors'])}: select the patient's "
                    "clinical table or type them as factor=value.")
        return None

    def onI3DManifestChanged(self, path):
        if self._parameterNode:
            self._parameterNode.i3dManifest = path

    def onI3DOutcomeChanged(self, index):
        if self._parameterNode and index >= 0:
            self._parameterNode.i3dOutcome = self.ui.i3dOutcomeComboBox.itemText(index)

    def onI3DWeightsChanged(self, index):
        if self._parameterNode and 0 <= index < len(I3D_WEIGHTS):
            self._parameterNode.i3dWeights = I3D_WEIGHTS[index][0]

    def onI3DWeightsFileChanged(self, path):
        if self._parameterNode:
            self._parameterNode.i3dWeightsFile = path

    def onI3DOutputFolderChanged(self, path):
        if self._parameterNode:
            self._parameterNode.i3dOutputFolder = path

    def onI3DModelPathChanged(self, path):
        if self._parameterNode:
            self._parameterNode.i3dModelPath = path

    def onI3DSegmentChanged(self, parameter, value):
        if self._parameterNode:
            setattr(self._parameterNode, parameter, value or ("" if parameter.endswith("Id") else None))

    # --- inflated 3D network (I3D): training and prediction

    def _ensureI3DDependencies(self, label):
        import RadiotherapyResponse

        if not RadiotherapyResponse.ensureDependencies(I3D_DEPENDENCY_GROUPS):
            label.text = "PyTorch, MONAI, Optuna and scikit-learn are needed for I3D models: they were not installed."
            return False
        self._i3dCohortCache = self._i3dModelCache = (None, None)  # read again with the packages now there
        self.updateGUI()
        return True

    def onI3DTrainButton(self):
        """Train in a background job (`rtresponse i3d train` on the cohort manifest, see i3djobs); Cancel ends it."""
        if not self._ensureI3DDependencies(self.ui.i3dStatusLabel):
            return
        p = self._parameterNode
        problem = self.i3dTrainProblem()  # the manifest may only now be readable
        if problem:
            self.ui.i3dStatusLabel.text = problem
            return
        try:
            with slicer.util.tryWithErrorDisplay("I3D training could not start."):
                weights = self.logic.i3dWeightsText(p.i3dWeightsFile if p.i3dWeights == "file" else p.i3dWeights)
                shape = self.logic.parseNumbers(p.i3dShape, "input size", integer=True)
                spacing = self.logic.parseNumbers(p.i3dSpacing, "voxel size")
        except Exception as error:  # noqa: BLE001 - shown by tryWithErrorDisplay, and in the status label
            self.ui.i3dStatusLabel.text = f"Failed: {error}"
            return
        outcome = p.i3dOutcome
        out = p.i3dOutputFolder or rm.resultsFolder(os.path.join(slicer.app.temporaryPath, "ResponseModel"),
                                                    f"{p.i3dOutcome}-I3D")
        arguments = i3djobs.trainArguments(
            p.i3dManifest, p.i3dOutcome, out, p.i3dPositive, p.i3dSequences.split(), p.i3dMask.strip(),
            self.logic.factorNames(p.i3dClinicalFactors), p.i3dImageOnly, weights, self.hubSettings().weights_folder,
            shape, spacing, p.i3dTrials, p.i3dMaxEpochs, self.i3dDevice(), overwrite=bool(p.i3dOutputFolder))
        self.i3dPanel.start(arguments, "Reading the cohort...",
                            lambda result: self._showI3DTraining(out, outcome, weights),
                            onFailure=lambda result: slicer.util.errorDisplay(
                                f"I3D training failed: {result.message}", windowTitle="Response Model"),
                            scene=slicer.mrmlScene, cancelledText="Cancelled: nothing was added to the scene.")

    def _showI3DTraining(self, out, outcome, weights):
        loaded = i3djobs.loadTraining(out, slicer.mrmlScene, outcome, weights)
        p = self._parameterNode
        if p is not None:
            p.i3dResultsTable, p.i3dLossChart = loaded["results"], loaded["lossChart"]
            p.i3dModelPath = str(loaded["modelPath"] or "")
        self.logic.showTableAndChart(loaded["results"], loaded["lossChart"])
        return i3djobs.summary(loaded)

    def onI3DPredictButton(self):
        if not self._ensureI3DDependencies(self.ui.i3dPredictionLabel):
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("I3D prediction failed.", waitCursor=True):
            try:
                clinical = self.logic.clinicalValues(p.i3dClinicalTable, p.i3dPatient, p.i3dClinicalValues)
                volumes = [getattr(p, f"i3dVolume{n}") for n in range(1, I3D_VOLUME_SLOTS + 1)]
                prediction = self.logic.predictI3D(p.i3dModelPath, volumes, p.i3dSegmentation, p.i3dSegmentId,
                                                   clinical, device=self.i3dDevice(),
                                                   weightsFolder=self.hubSettings().weights_folder)
            except Exception as error:
                self.ui.i3dPredictionLabel.text = f"Failed: {error}"
                raise
            self.ui.i3dPredictionLabel.text = self.logic.i3dPredictionSummary(prediction)


class ResponseModelLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points; everything that computes lives in ``rtresponse``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return ResponseModelParameterNode(super().getParameterNode())

    # --- names and tables

    @staticmethod
    def paperMethods():
        """(selectors, classifiers) of Tanaka et al., the defaults."""
        from rtresponse.models.classifiers import PAPER_CLASSIFIERS
        from rtresponse.models.grid import PAPER_SELECTORS

        return list(PAPER_SELECTORS), list(PAPER_CLASSIFIERS)

    @staticmethod
    def methodNames():
        """(selector names, classifier names) that can be chosen.

        The selector registry needs scikit-learn; before it is installed only the papers' selectors are listed.
        """
        from rtresponse.models.classifiers import CLASSIFIER_NAMES
        from rtresponse.models.grid import PAPER_SELECTORS

        try:
            from rtresponse.selection import SELECTORS
        except ImportError:
            return list(PAPER_SELECTORS), list(CLASSIFIER_NAMES)
        return list(SELECTORS), list(CLASSIFIER_NAMES)

    @staticmethod
    def tableColumns(tableNode):
        """Column names of a table node ([] for None)."""
        if tableNode is None:
            return []
        return [tableNode.GetColumnName(i) for i in range(tableNode.GetNumberOfColumns())]

    @staticmethod
    def featureSetNames(tableNames, withClinical):
        """The feature sets a run evaluates, in order: each table, the clinical factors, then all combined."""
        from rtresponse.models.study import feature_set_names

        return feature_set_names(tableNames, withClinical)

    @staticmethod
    def _frame(table, name=None):
        """(DataFrame, label) of a table node, a DataFrame or a CSV path."""
        import pandas as pd
        from rtresponse import mrml
        from rtresponse.errors import InputError
        from rtresponse.models.tables import read_csv

        if isinstance(table, pd.DataFrame):
            return table, name or "table"
        if isinstance(table, (str, os.PathLike)):
            return read_csv(table), os.fspath(table)
        if table is None or not hasattr(table, "IsA") or not table.IsA("vtkMRMLTableNode"):
            raise InputError(f"expected a table node, a DataFrame or a CSV path, got {type(table).__name__}",
                             node=name)
        return mrml.table_node_to_dataframe(table), table.GetName()

    def clinicalFrame(self, clinicalTable):
        """The clinical table as a DataFrame indexed by patient_id (str)."""
        from rtresponse.models.study import clinical_frame

        return clinical_frame(*self._frame(clinicalTable, "clinical table"))

    def readFeatureTable(self, table, name):
        """A numeric feature table indexed by patient_id, failed rows left out; refuses tables holding outcomes."""
        from rtresponse.models.study import feature_table

        frame, label = self._frame(table, name)
        return feature_table(frame, name, label)

    def featureSets(self, featureTables, clinicalTable=None, clinicalColumns=()):
        """{set name: numeric DataFrame indexed by patient_id}: each table, the encoded clinical factors, all combined.

        ``clinicalTable`` is a table node, DataFrame (indexed by patient_id or with that column) or CSV path.
        Columns that two sets share are prefixed "<set>:" in the combined set.
        """
        from rtresponse.models.study import feature_sets

        sets = {name: self.readFeatureTable(table, name) for name, table in dict(featureTables or {}).items()}
        clinical = self.clinicalFrame(clinicalTable) if clinicalColumns else None
        return feature_sets(sets, clinical, clinicalColumns)

    @staticmethod
    def parsePositive(text, outcome):
        """The positive outcome value typed as text, converted to the outcome's type ("" or None: the default)."""
        from rtresponse.models.study import parse_positive

        return parse_positive(text, outcome)

    # --- evaluation

    def run(self, featureTables, clinicalTable, outcomeColumn, clinicalColumns=(), protocol="bootstrap",
            selectors=None, classifiers=None, k=10, nBootstrap=1000, forward=True, positive="1", outputFolder=None,
            progress=None, shouldCancel=None):
        """Evaluate feature sets against an outcome, write the files and put the results into the scene.

        ``featureTables``: {name: table node, DataFrame or CSV path}, one row per patient (patient_id column or
        index; rows whose status is not "ok" are left out). ``clinicalTable``: the table with ``outcomeColumn`` and
        the ``clinicalColumns`` to add as the "clinical" feature set. ``protocol``: "bootstrap" or "split";
        ``selectors``/``classifiers``: names (None: the papers' five each). ``positive``: the positive outcome
        value (text is converted to the outcome's type). ``outputFolder``: None makes a new temporary folder.
        ``progress(done, total)`` is called after each model; when ``shouldCancel()`` returns True,
        ``rtresponse.models.grid.Cancelled`` is raised and nothing is added to the scene.

        Returns {"results": table node, "roc": plot chart node, "heatmaps": {label: volume node}, "paths":
        {label: file path}, "outputFolder": path, "positive": value, "evaluation": rtresponse Evaluation}.
        """
        import importlib.util
        from pathlib import Path

        from rtresponse import mrml
        from rtresponse.errors import InputError
        from rtresponse.models.evaluate import evaluate, write_outputs
        from rtresponse.models.grid import Cancelled
        from rtresponse.models.tables import assemble

        if protocol not in PROTOCOLS:
            raise InputError(f"protocol must be one of {', '.join(PROTOCOLS)}, got '{protocol}'")
        paperSelectors, paperClassifiers = self.paperMethods()
        selectors = paperSelectors if selectors is None else list(selectors)
        classifiers = paperClassifiers if classifiers is None else list(classifiers)
        if not selectors or not classifiers:
            raise InputError("choose at least one feature selector and one classifier")
        if importlib.util.find_spec("matplotlib") is None:  # fail before the long part, not after it
            raise InputError("matplotlib is needed to draw the heat maps and the ROC figure: install it "
                             "(slicer.util.pip_install('matplotlib'))")
        if clinicalTable is None:
            raise InputError("no clinical table selected: it holds the outcome")
        clinical = self.clinicalFrame(clinicalTable)
        if outcomeColumn not in clinical.columns:
            outcomes = [c for c in clinical.columns if str(c).startswith(OUTCOME_PREFIX)]
            raise InputError(f"no outcome column '{outcomeColumn}' (outcome columns: {', '.join(outcomes) or 'none'})",
                             node=self._frame(clinicalTable, "clinical table")[1])
        outcome = clinical[outcomeColumn]
        sets = self.featureSets(featureTables, clinical, clinicalColumns)
        # every set is judged on the same patients; a single-class outcome or no common patient fails here, at once
        positive = assemble(sets, outcome, self.parsePositive(positive, outcome)).positive
        positive = positive.item() if hasattr(positive, "item") else positive
        if shouldCancel is not None and shouldCancel():
            raise Cancelled("cancelled before the first model")
        total = len(sets) * len(selectors) * len(classifiers)
        evaluation = evaluate(sets, outcome, protocol=protocol, selectors=selectors, classifiers=classifiers, k=k,
                              n_bootstrap=nBootstrap, forward=forward, positive=positive,
                              progress=self._overallProgress(total, progress, shouldCancel),
                              should_cancel=shouldCancel)
        outcomeName = outcomeColumn[len(OUTCOME_PREFIX):] if outcomeColumn.startswith(OUTCOME_PREFIX) else outcomeColumn
        folder = Path(outputFolder) if outputFolder else self.newOutputFolder(outcomeName)
        paths = write_outputs(evaluation, folder, outcomeName, positive)

        scene = self._scene(clinicalTable)
        results = mrml.dataframe_to_table_node(evaluation.results,
                                               scene.GenerateUniqueName(f"{outcomeName} model results"), scene)
        for key, value in (("outcome", outcomeColumn), ("positive", positive), ("protocol", protocol),
                           ("outputFolder", folder), ("model", paths["model"])):
            results.SetAttribute(f"ResponseModel.{key}", str(value))
        roc = self.rocChart(evaluation.roc, scene.GenerateUniqueName(f"{outcomeName} ROC"), scene)
        heatmaps = {label: self.loadImage(path, f"{outcomeName} {label}")
                    for label, path in paths.items() if label.startswith("grid ")}
        for pid, why in evaluation.dropped.items():
            logging.info(f"ResponseModel: patient {pid} left out: {why}")
        return {"results": results, "roc": roc, "heatmaps": heatmaps, "paths": paths, "outputFolder": folder,
                "positive": positive, "evaluation": evaluation}

    @staticmethod
    def _overallProgress(total, progress, shouldCancel):
        """A progress callback counting over every feature set (the bootstrap grid restarts its count per set)
        that also stops the run between two models when ``shouldCancel()`` says so."""
        from rtresponse.models.grid import Cancelled

        state = {"offset": 0, "last": 0, "lastTotal": 0}

        def report(done, setTotal):
            if done <= state["last"]:  # a new feature set's grid
                state["offset"] += state["lastTotal"]
            state["last"], state["lastTotal"] = done, setTotal
            if progress is not None:
                progress(min(state["offset"] + done, total), total)
            if shouldCancel is not None and shouldCancel():
                raise Cancelled("model evaluation cancelled")

        return report

    @staticmethod
    def _scene(node):
        scene = node.GetScene() if hasattr(node, "GetScene") else None
        return scene or slicer.mrmlScene

    @staticmethod
    def newOutputFolder(outcomeName):
        """A new folder for one run's files under Slicer's temporary folder (the system's outside Slicer)."""
        import tempfile
        import time
        from pathlib import Path

        app = getattr(slicer, "app", None)
        base = Path(app.temporaryPath if app is not None else tempfile.gettempdir()) / "ResponseModel"
        base.mkdir(parents=True, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in outcomeName)
        return Path(tempfile.mkdtemp(prefix=f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=base))

    @staticmethod
    def rocChart(roc, name, scene=None, maxCurves=MAX_ROC_CURVES):
        """A plot chart node with the ``maxCurves`` ROC curves of largest area and the chance line."""
        import numpy as np
        from rtresponse import mrml

        def area(points):
            fpr, tpr = (np.asarray(v, dtype=float) for v in points)
            return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))

        ranked = sorted(roc.items(), key=lambda item: -area(item[1]))[:maxCurves]
        series = {f"{label} (AUC {area(points):.2f})": points for label, points in ranked}
        series["chance"] = ([0.0, 1.0], [0.0, 1.0])
        chart = mrml.plot_xy(series, name, scene, x_title="1 - specificity", y_title="sensitivity")
        for i in range(chart.GetNumberOfPlotSeriesNodes()):
            plot = chart.GetNthPlotSeriesNode(i)
            if i == chart.GetNumberOfPlotSeriesNodes() - 1:
                plot.SetColor(0.6, 0.6, 0.6)
                plot.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash)
            else:
                plot.SetColor(*ROC_COLORS[i % len(ROC_COLORS)])
        chart.SetXAxisRange(0.0, 1.0)
        chart.SetYAxisRange(0.0, 1.0)
        chart.XAxisRangeAutoOff()
        chart.YAxisRangeAutoOff()
        return chart

    @staticmethod
    def loadImage(path, name):
        """A PNG (an RGB heat map) as a volume node of the application's scene."""
        return slicer.util.loadVolume(str(path), {"singleFile": True, "name": name, "show": False})

    @staticmethod
    def summary(result):
        """One paragraph on a run: the best model, where things are, who was left out."""
        evaluation = result["evaluation"]
        best = evaluation.best
        if "auc632plus" in best:
            how, score = "Best", f"0.632+ AUC {best['auc632plus']:.3f}"
        else:  # the split protocol chooses on the training patients' cross-validation, then tests once
            how, score = "Chosen by cross-validation", f"CV AUC {best['cv_auc']:.3f}, test AUC {best['auc']:.3f}"
        text = (f"{how} of {len(evaluation.results)} model(s): {best['feature_set']}, {best['selector']} + "
                f"{best['classifier']}, {score} with {len(evaluation.features)} feature(s).\n"
                f"Results: '{result['results'].GetName()}'; ROC: '{result['roc'].GetName()}'.\n"
                f"Files in {result['outputFolder']}; model: {os.path.basename(str(result['paths']['model']))}.")
        if evaluation.dropped:
            first = next(iter(evaluation.dropped.items()))
            text += f"\n{len(evaluation.dropped)} patient(s) left out, e.g. {first[0]}: {first[1]}."
        return text

    def showResults(self, result):
        """Results table and ROC chart in a layout with table and plot views; the first heat map in the slice views
        (does nothing without the application's layout)."""
        if slicer.app.layoutManager() is None:
            return
        self.showTableAndChart(result["results"], result["roc"])
        heatmaps = list(result["heatmaps"].values())
        if heatmaps:
            slicer.util.setSliceViewerLayers(background=heatmaps[0], fit=True)

    @staticmethod
    def showTable(tableNode):
        """Show a table in a layout with a table view (does nothing without the application's layout)."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:
            return
        if slicer.app.applicationLogic().GetSelectionNode().GetActivePlotChartID():
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
        else:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    # --- prediction

    def patientFeatures(self, modelFeatures, featureTable, clinicalTable=None):
        """The model's inputs for the rows of ``featureTable``, clinical factors encoded from ``clinicalTable``.

        A table without patient_id (a Tumor Features table: one row per segment of the current patient) is used row
        by row, each row labelled by its index; its clinical table must then have one row, used for every row.
        """
        from rtresponse.models.study import patient_features

        frame, label = self._frame(featureTable, "patient features")
        clinical, clinicalLabel = (None, "clinical table") if clinicalTable is None else self._frame(
            clinicalTable, "clinical table")
        return patient_features(modelFeatures, frame, clinical, label=label, clinical_label=clinicalLabel)

    def predict(self, modelPath, featureTableNode, clinicalTable=None, tableName=None):
        """Probabilities of a saved model for the rows of a feature table; also added to the scene as a table.

        Returns a DataFrame (index: patient_id or segment; columns probability, predicted_positive) whose ``attrs``
        hold the model's outcome, positive class, cut-off, description and the new table node's ID (tableNodeID).
        """
        from rtresponse import mrml
        from rtresponse.errors import InputError
        from rtresponse.models import persistence

        if not modelPath:
            raise InputError("no model file chosen")
        if featureTableNode is None:
            raise InputError("no feature table chosen")
        bundle = persistence.load_model(modelPath)
        features = self.patientFeatures(bundle["features"], featureTableNode, clinicalTable)
        prediction = persistence.predict(bundle, features)
        prediction.attrs.update({key: bundle[key] for key in ("outcome", "positive", "cutoff", "description")})
        scene = self._scene(featureTableNode)
        name = tableName or f"{bundle['outcome']} prediction"
        table = mrml.dataframe_to_table_node(prediction, scene.GenerateUniqueName(name), scene)
        table.SetAttribute("ResponseModel.model", os.fspath(modelPath))
        for key in ("outcome", "positive", "cutoff", "description"):
            table.SetAttribute(f"ResponseModel.{key}", str(bundle[key]))
        prediction.attrs["tableNodeID"] = table.GetID()
        return prediction

    @staticmethod
    def predictionSummary(prediction):
        attrs = prediction.attrs
        outcome, positive, cutoff = attrs.get("outcome", "outcome"), attrs.get("positive", 1), attrs.get("cutoff", 0.5)
        lines = [f"Model: {attrs.get('description', '')}. Probability of {outcome} = {positive}; positive at or "
                 f"above the cut-off {cutoff:.3f}."]
        for index, row in prediction.iterrows():
            verdict = "positive" if row["predicted_positive"] else "negative"
            lines.append(f"{index}: probability {row['probability']:.3f} → {verdict}")
        return "\n".join(lines)

    # --- inflated 3D network (I3D), Jeong et al.

    @staticmethod
    def cohortNames(manifest):
        """{"patients": count, "images", "masks", "clinical", "outcomes": names without prefix} of a cohort manifest
        (its files are not checked: Train does that)."""
        from rtresponse.cohort import load_manifest

        cohort = load_manifest(manifest, check_files=False)
        return {"patients": len(cohort.patient_ids), "images": list(cohort.image_names),
                "masks": list(cohort.mask_names), "clinical": list(cohort.clinical_names),
                "outcomes": list(cohort.outcome_names)}

    @staticmethod
    def factorNames(factors):
        """Clinical factor names from text ("age HPV, clin_T_stage") or a list, without the clin_ prefix."""
        if isinstance(factors, str):
            factors = re.split(r"[\s,;]+", factors)
        names = [str(f).strip() for f in factors or [] if str(f).strip()]
        return list(dict.fromkeys(n[len(CLINICAL_PREFIX):] if n.startswith(CLINICAL_PREFIX) else n for n in names))

    @staticmethod
    def parseNumbers(text, what, integer=False, count=3):
        """``count`` positive numbers typed as text ("96 96 24", "1.5, 1.5, 3") as a tuple."""
        from rtresponse.errors import InputError

        parts = [part for part in re.split(r"[\s,;x]+", str(text or "").strip()) if part]
        try:
            values = tuple(float(part) for part in parts)
        except ValueError:
            raise InputError(f"the {what} must be {count} numbers (x y z), got '{text}'") from None
        if len(values) != count or any(v <= 0 for v in values):
            raise InputError(f"the {what} must be {count} positive numbers (x y z), got '{text}'")
        if integer:
            if any(v != int(v) for v in values):
                raise InputError(f"the {what} must be whole numbers of voxels, got '{text}'")
            return tuple(int(v) for v in values)
        return values

    @staticmethod
    def i3dOutcome(cohort, name, positive=""):
        """(0/1 outcome by patient_id, the positive value) of a manifest outcome (name without outcome_)."""
        from rtresponse.models.i3d.workflow import outcome_labels

        return outcome_labels(cohort, name, positive)

    @staticmethod
    def i3dWeightsText(weights):
        """The backbone weights as the model files record them: "imagenet", "random" or an existing file's path."""
        from rtresponse.errors import InputError

        weights = os.fspath(weights) if weights else ""
        if weights in ("imagenet", "random"):
            return weights
        if not weights:
            raise InputError("no backbone weights chosen (imagenet, random or a weights file)")
        if not os.path.isfile(weights):
            raise InputError("backbone weights file not found", path=weights)
        return weights

    def trainI3D(self, manifest, outcome, positive="", sequences=("T1", "T2"), mask="GTVp", clinicalFactors=None,
                 imageOnly=False, weights="imagenet", shape=(96, 96, 24), spacing=(1.5, 1.5, 3.0), trials=0,
                 maxEpochs=300, outputFolder=None, device="auto", weightsFolder=None, margin=10.0, seed=0,
                 scene=None, progress=None, shouldCancel=None):
        """Train and test the inflated 3D network on a cohort (as ``rtresponse i3d train``); results into the scene.

        ``manifest``: the cohort manifest; ``outcome``: an outcome name (without outcome_), ``positive`` its positive
        value typed as text ("": 1). ``sequences``: manifest image names (the network's colour channels, first = the
        reference grid); ``mask``: the tumour mask name. ``clinicalFactors``: the factors the LASSO chooses three from
        (None or empty: every clin_ column); ``imageOnly``: DLR (MR) only. ``weights``: "imagenet" (a local file in
        ``weightsFolder``), "random" (testing only) or a weights file. ``shape``/``spacing``: the input box in voxels
        and mm (x, y, z). ``trials``: Optuna trials (0: none). ``outputFolder``: None makes a new temporary folder;
        the I3D features are cached there (i3d_features.npz) and reused by the next run into the same folder.
        ``progress(stage, done, total)``: stage "features", "tuning", a model's name or "writing"; when
        ``shouldCancel()`` returns True, ``rtresponse.models.i3d.features.Cancelled`` is raised and nothing is added
        to the scene.

        Returns {"results": table node ("I3D results": one row per model, test-set metrics), "lossChart": plot chart
        node, "modelPath": the model file to predict with (DLR (MR + CF) when trained), "paths": {model: file},
        "outputFolder", "positive", "weights", "failures": {patient: problem}, "study": rtresponse I3DStudy}.
        """
        from pathlib import Path

        from rtresponse import mrml
        from rtresponse.cohort import load_manifest
        from rtresponse.errors import InputError
        from rtresponse.models.i3d.outputs import MODEL_FILES
        from rtresponse.models.i3d.preprocess import VolumeConfig
        from rtresponse.models.i3d.study import IMAGE_ONLY, WITH_CLINICAL
        from rtresponse.models.i3d.training import HeadConfig
        from rtresponse.models.i3d.workflow import train_cohort
        from rtresponse.settings import resolve_device

        if not manifest:
            raise InputError("no cohort manifest chosen")
        cohort = load_manifest(manifest)
        weightsText = self.i3dWeightsText(weights)
        config = VolumeConfig(sequences=tuple(sequences), mask=mask, spacing_xyz=tuple(float(v) for v in spacing),
                              shape_xyz=tuple(int(v) for v in shape), margin_mm=float(margin), mode="channels")
        folder = Path(outputFolder) if outputFolder else self.newOutputFolder(f"{outcome}-I3D")
        study, positive, _ = train_cohort(cohort, outcome, folder, config, positive, self.factorNames(clinicalFactors),
                                          imageOnly, weightsText, weightsFolder,
                                          HeadConfig(max_epochs=int(maxEpochs), seed=seed), int(trials), seed=seed,
                                          device=resolve_device(device), progress=progress,
                                          should_cancel=shouldCancel)

        scene = scene or slicer.mrmlScene
        paths = {name: folder / MODEL_FILES[name] for name in study.models}
        results = mrml.dataframe_to_table_node(study.metrics_table(), scene.GenerateUniqueName("I3D results"), scene)
        for key, value in (("outcome", outcome), ("positive", positive), ("weights", weightsText),
                           ("outputFolder", folder)):
            results.SetAttribute(f"ResponseModel.i3d.{key}", str(value))
        for name, path in paths.items():
            results.SetAttribute(f"ResponseModel.i3d.model.{name}", str(path))
        chart = self.lossChart(study, scene.GenerateUniqueName("I3D loss curves"), scene)
        for pid, why in study.failures.items():
            logging.info(f"ResponseModel I3D: patient {pid} left out: {why}")
        return {"results": results, "lossChart": chart, "paths": paths,
                "modelPath": paths.get(WITH_CLINICAL, paths.get(IMAGE_ONLY)), "outputFolder": folder,
                "positive": positive, "weights": weightsText, "failures": dict(study.failures), "study": study}

    @staticmethod
    def lossChart(study, name, scene=None):
        """A plot chart node with the training (solid) and validation (dashed) loss per epoch of each model."""
        from rtresponse import mrml

        series = {}
        for model, result in study.models.items():
            history = result.head.history
            series[f"{model} training"] = (history["epoch"], history["train_loss"])
            series[f"{model} validation"] = (history["epoch"], history["validation_loss"])
        chart = mrml.plot_xy(series, name, scene, x_title="epoch", y_title="cross-entropy loss")
        for i in range(chart.GetNumberOfPlotSeriesNodes()):
            plot = chart.GetNthPlotSeriesNode(i)
            plot.SetColor(*I3D_LOSS_COLORS[(i // 2) % len(I3D_LOSS_COLORS)])
            if i % 2:
                plot.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash)
        return chart

    @staticmethod
    def i3dSummary(result):
        """One paragraph on a training: each model's test AUC, the chosen clinical factors, where things are."""
        study = result["study"]
        lines = [f"Test set of {len(study.test_ids)} patient(s) ({len(study.train_ids)} training, "
                 f"{len(study.validation_ids)} validation):"]
        for _index, row in study.metrics_table().iterrows():
            lines.append(f"{row['model']}: AUC {row['auc']:.3f} ({row['auc_low']:.3f}-{row['auc_high']:.3f}), "
                         f"balanced accuracy {row['balanced_accuracy']:.3f}, Brier {row['brier']:.3f}.")
        withClinical = [model.clinical for model in study.models.values() if model.clinical is not None]
        if withClinical:
            lines.append(f"Clinical factors chosen by LASSO: {', '.join(withClinical[0].factors)}.")
        lines.append(f"Results: '{result['results'].GetName()}'; loss curves: '{result['lossChart'].GetName()}'.")
        lines.append(f"Files in {result['outputFolder']}; model for Predict: "
                     f"{os.path.basename(str(result['modelPath']))}.")
        if result["weights"] == "random":
            lines.append("Random backbone weights: a test of the pipeline, not a usable model.")
        if result["failures"]:
            first = next(iter(result["failures"].items()))
            lines.append(f"{len(result['failures'])} patient(s) left out, e.g. {first[0]}: {first[1]}")
        return "\n".join(lines)

    @staticmethod
    def showTableAndChart(tableNode, chartNode):
        """A table and a chart in a layout with table and plot views (does nothing without the application's layout)."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:
            return
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        selectionNode.SetActiveTableID(tableNode.GetID())
        selectionNode.SetActivePlotChartID(chartNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()
        slicer.app.applicationLogic().PropagatePlotChartSelection()

    @staticmethod
    def i3dModelInfo(modelPath):
        """What an I3D model file needs and says: {"sequences", "mask", "factors" (clinical, [] for DLR (MR)),
        "columns" (their encoded columns), "medians" (fill values of numbers), "outcome", "positive", "cutoff",
        "model", "weights"}."""
        from rtresponse.models.i3d.training import load_head

        _network, info = load_head(modelPath)
        clinical = info.get("clinical") or {}
        return {"sequences": list(info["volume"]["sequences"]), "mask": info["volume"].get("mask", ""),
                "factors": list(clinical.get("factors", [])), "columns": list(clinical.get("columns", [])),
                "medians": dict(clinical.get("medians", {})),
                "outcome": info.get("outcome", "outcome"), "positive": info.get("positive", "1"),
                "cutoff": float(info.get("cutoff", 0.5)), "model": info.get("model", ""),
                "weights": info.get("weights", "")}

    @staticmethod
    def i3dModelDescription(info):
        text = (f"{info['model']}: probability of {info['outcome']} = {info['positive']} from "
                f"{', '.join(info['sequences'])} around {info['mask']}")
        text += f" and {', '.join(info['factors'])}." if info["factors"] else " (image only)."
        if info["weights"] == "random":
            text += " Random backbone weights: a test model."
        return text

    @staticmethod
    def guessI3DInputs(parameterNode, info, scene=None):
        """Fill the empty Predict inputs from the scene by name: a volume named after each sequence (e.g. "P001 T1"),
        a segment named as the model's mask and, for a model with clinical factors, a one-row table with clin_
        columns. What is already chosen is kept."""
        from rtresponse import mrml

        p = parameterNode
        if p is None or not isinstance(info, dict):
            return
        scene = scene or slicer.mrmlScene

        def named(node, word):
            return re.search(rf"(^|[^a-z0-9]){re.escape(word.lower())}([^a-z0-9]|$)", node.GetName().lower())

        volumes = [v for v in mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")
                   if not v.IsA("vtkMRMLLabelMapVolumeNode")]
        for n, sequence in enumerate(info["sequences"][:I3D_VOLUME_SLOTS], start=1):
            if getattr(p, f"i3dVolume{n}") is None:
                found = next((v for v in volumes if named(v, sequence)), None)
                if found is not None:
                    setattr(p, f"i3dVolume{n}", found)
        if not p.i3dSegmentation and info["mask"]:
            for segmentation in mrml.nodes_by_class(scene, "vtkMRMLSegmentationNode"):
                segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName(info["mask"])
                if segmentId:
                    p.i3dSegmentation, p.i3dSegmentId = segmentation, segmentId
                    break
        if info["factors"] and not p.i3dClinicalTable:
            for table in mrml.nodes_by_class(scene, "vtkMRMLTableNode"):
                columns = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
                if table.GetNumberOfRows() == 1 and any(c.startswith(CLINICAL_PREFIX) for c in columns):
                    p.i3dClinicalTable = table
                    break

    @staticmethod
    def parseClinicalValues(text):
        """{factor: value} from "age=63; HPV=positive" (numbers become numbers; clin_ prefixes are dropped)."""
        from rtresponse.errors import InputError

        values = {}
        for item in re.split(r"[;\n]+", str(text or "")):
            if not item.strip():
                continue
            if "=" not in item:
                raise InputError(f"clinical values are typed as factor=value separated by ';', got '{item.strip()}'")
            name, value = (part.strip() for part in item.split("=", 1))
            name = name[len(CLINICAL_PREFIX):] if name.startswith(CLINICAL_PREFIX) else name
            if not name:
                raise InputError(f"no factor name in '{item.strip()}'")
            try:
                values[name] = float(value) if value else None
            except ValueError:
                values[name] = value
        return values

    def clinicalValues(self, tableNode=None, patientId="", text=""):
        """{factor: value} of the current patient: the row of ``tableNode`` (clin_ columns; the row of ``patientId``,
        or the table's only row), then the values typed in ``text`` ("factor=value; ...") on top."""
        import pandas as pd
        from rtresponse import mrml
        from rtresponse.errors import InputError

        values = {}
        if tableNode is not None:
            frame = mrml.table_node_to_dataframe(tableNode)
            if PATIENT_ID in frame.columns:
                frame = frame.set_index(PATIENT_ID)
            patientId = str(patientId or "").strip()
            if patientId:
                if frame.index.name != PATIENT_ID:
                    raise InputError(f"no patient_id column to find patient {patientId} in", node=tableNode.GetName())
                rows = frame[frame.index.astype(str) == patientId]
                if rows.empty:
                    raise InputError(f"no row of patient {patientId}", node=tableNode.GetName())
                row = rows.iloc[0]
            elif len(frame) == 1:
                row = frame.iloc[0]
            else:
                raise InputError(f"the table has {len(frame)} rows: type the patient's id", node=tableNode.GetName())
            for column, value in row.items():
                column = str(column)
                missing = value is None or (not isinstance(value, str) and pd.isna(value))
                if missing or column.startswith(OUTCOME_PREFIX):
                    continue
                name = column[len(CLINICAL_PREFIX):] if column.startswith(CLINICAL_PREFIX) else column
                values[name] = value.item() if hasattr(value, "item") else value
        values.update(self.parseClinicalValues(text))
        return values

    def predictI3D(self, modelPath, volumeNodes, segmentationNode, segmentId, clinical=None, device="auto",
                   weightsFolder=None, tableName=None):
        """Probability of an I3D model's positive class for the patient in the scene; also added as a one-row table.

        ``volumeNodes``: {sequence name: volume node} or a list in the model's sequence order (extra entries are
        ignored); the tumour segment becomes a mask on the first sequence's grid. ``clinical``: {factor: value} (see
        ``clinicalValues``), needed by a model with clinical factors: a factor not given counts as unknown (categories)
        or the training median (numbers the model has a median for; for the others a value is required). The inputs
        are only read.

        Returns {"probability", "predicted" (1 = positive), "cutoff", "outcome", "positive", "model", "sequences",
        "notGiven": factors not given, "unknownCategories": {factor: value the model does not know},
        "weights", "tableNodeID"}.
        """
        import pandas as pd
        from rtresponse import mrml
        from rtresponse.errors import InputError
        from rtresponse.models.i3d.outputs import predict_images
        from rtresponse.settings import resolve_device

        if not modelPath:
            raise InputError("no I3D model file chosen")
        info = self.i3dModelInfo(modelPath)
        sequences = info["sequences"]
        if isinstance(volumeNodes, dict):
            nodes = [volumeNodes.get(s) for s in sequences]
        else:
            nodes = (list(volumeNodes or []) + [None] * len(sequences))[:len(sequences)]
        missing = [s for s, node in zip(sequences, nodes) if node is None]
        if missing:
            raise InputError(f"select the patient's {' and '.join(missing)} volume(s): the model reads "
                             f"{', '.join(sequences)}", path=os.fspath(modelPath))
        if segmentationNode is None or not segmentId:
            raise InputError(f"select the tumour segment (the model was trained on the {info['mask']} mask)")
        images = {s: mrml.volume_node_to_image(node) for s, node in zip(sequences, nodes)}
        mask = mrml.segment_to_mask(segmentationNode, segmentId, nodes[0])
        given = {k: v for k, v in (clinical or {}).items() if v is not None and not (isinstance(v, float) and v != v)}
        factors, columns = info["factors"], set(info["columns"])
        inputs, unknown = None, {}
        if factors:
            if not any(f in given for f in factors):
                raise InputError(f"this model needs the clinical factors {', '.join(factors)}: none was given "
                                 "(select the patient's clinical table or type factor=value)")
            inputs = {}
            for factor in factors:
                value = given.get(factor)
                if factor in columns:  # a number: missing is the training median where the model has one
                    if value is None and factor not in info["medians"]:
                        raise InputError(f"this model needs the clinical factor '{factor}' (a number): it has no "
                                         "fill value for it", path=os.fspath(modelPath))
                    try:
                        inputs[factor] = float("nan") if value is None else float(value)
                    except (TypeError, ValueError):
                        raise InputError(f"clinical factor '{factor}' is a number in this model, "
                                         f"got '{value}'") from None
                else:  # a category: one-hot; a value the model never saw counts as unknown
                    inputs[factor] = None if value is None else str(value)
                    if value is not None and f"{factor}={value}" not in columns:
                        unknown[factor] = str(value)
        result = predict_images(modelPath, images, mask, inputs, weights_folder=weightsFolder,
                                device=resolve_device(device))
        result.update({"sequences": sequences, "notGiven": [f for f in factors if f not in given],
                       "unknownCategories": unknown, "weights": info["weights"]})
        scene = self._scene(nodes[0])
        frame = pd.DataFrame([{"model": result["model"], "probability": result["probability"],
                               "cutoff": result["cutoff"], "predicted_positive": result["predicted"],
                               "outcome": result["outcome"], "positive": result["positive"]}])
        table = mrml.dataframe_to_table_node(
            frame, scene.GenerateUniqueName(tableName or f"{result['outcome']} I3D prediction"), scene)
        table.SetAttribute("ResponseModel.model", os.fspath(modelPath))
        result["tableNodeID"] = table.GetID()
        return result

    @staticmethod
    def i3dPredictionSummary(result):
        """The probability, the model's cut-off and the predicted class in words."""
        outcome, positive = result.get("outcome") or "outcome", result.get("positive")
        verdict = (f"{outcome} = {positive} (positive)" if result["predicted"]
                   else f"not {outcome} = {positive} (negative)")
        lines = [f"{result.get('model') or 'I3D model'}: probability of {outcome} = {positive} is "
                 f"{result['probability']:.3f}; cut-off {result['cutoff']:.3f}.",
                 f"Predicted: {verdict}."]
        if result.get("notGiven"):
            lines.append(f"Not given (unknown / training median used): {', '.join(result['notGiven'])}.")
        if result.get("unknownCategories"):
            lines.append("Values the model never saw (counted as unknown): "
                         + ", ".join(f"{k}={v}" for k, v in result["unknownCategories"].items()) + ".")
        if result.get("weights") == "random":
            lines.append("Random backbone weights: a test model, not a usable prediction.")
        return "\n".join(lines)


class ResponseModelTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):  # a test whose packages are absent is skipped with a message; the others run
        selftests.runEach(self, (self.test_SplitAndPredict, self.test_BootstrapHeatMap, self.test_Cancel,
                                 self.test_I3DTrainAndPredict, self.test_I3DCancel))

    def makeTables(self, n=60, seed=0):
        """A planted cohort as table nodes: features (feature_0 carries the outcome) and a clinical table
        (clin_age, clin_stage with a missing value, outcome_response); returns (features node, clinical node)."""
        import numpy as np
        import pandas as pd
        from rtresponse import mrml

        rng = np.random.default_rng(seed)
        ids = pd.Index([f"P{i:03d}" for i in range(n)], name=PATIENT_ID)
        response = rng.permutation(np.arange(n) % 2)
        features = pd.DataFrame(rng.normal(size=(n, 6)), index=ids, columns=[f"feature_{j}" for j in range(6)])
        features["feature_0"] += 2.0 * response
        features["status"] = "ok"
        features.iloc[0, -1] = "mask is empty"  # a failed extraction is left out, not fatal
        stage = rng.choice(["II", "III", "IV"], n).astype(object)
        stage[1] = None
        clinical = pd.DataFrame({"clin_age": rng.integers(40, 80, n).astype(float), "clin_stage": stage,
                                 "outcome_response": response}, index=ids)
        return (mrml.dataframe_to_table_node(features, "planted features", slicer.mrmlScene),
                mrml.dataframe_to_table_node(clinical, "planted clinical", slicer.mrmlScene))

    def _outputFolder(self, name):
        import tempfile

        return tempfile.mkdtemp(prefix=f"ResponseModelTest-{name}-", dir=slicer.app.temporaryPath)

    def test_SplitAndPredict(self):
        selftests.requirePackages(self, ["core", "modelling"])
        import pandas as pd
        from rtresponse import mrml

        self.delayDisplay("Split protocol on a planted table")
        features, clinical = self.makeTables()
        logic = ResponseModelLogic()
        result = logic.run({"planted": features}, clinical, "outcome_response", ["clin_age", "clin_stage"], "split",
                           ["wilcoxon"], ["lda"], k=3, nBootstrap=20, forward=False, positive="1",
                           outputFolder=self._outputFolder("split"))
        table = result["results"]
        self.assertTrue(slicer.mrmlScene.IsNodePresent(table))
        self.assertEqual(table.GetName(), "response model results")
        frame = mrml.table_node_to_dataframe(table)
        self.assertEqual(list(frame["feature_set"]), ["planted", "clinical", "planted+clinical"])
        auc = frame.set_index("feature_set")["auc"]
        self.assertGreater(auc["planted"], 0.75)  # the planted signal is learnt...
        self.assertLess(auc["clinical"], auc["planted"])  # ...and not from noise
        chart = result["roc"]
        self.assertTrue(slicer.mrmlScene.IsNodePresent(chart))
        self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 4)  # three models and the chance line
        self.assertIn("P000", result["evaluation"].dropped)
        self.assertTrue(os.path.isfile(result["paths"]["model"]))

        self.delayDisplay("Predicting with the saved model")
        ids = pd.Index(["P900", "P901"], name=PATIENT_ID)
        newFeatures = pd.DataFrame({f"feature_{j}": [0.0, 0.0] for j in range(6)}, index=ids)
        newFeatures["feature_0"] = [3.0, -3.0]
        newClinical = pd.DataFrame({"clin_age": [60.0, 60.0], "clin_stage": ["II", "II"], "outcome_response": [0, 0]},
                                   index=ids)
        prediction = logic.predict(result["paths"]["model"],
                                   mrml.dataframe_to_table_node(newFeatures, "new features", slicer.mrmlScene),
                                   mrml.dataframe_to_table_node(newClinical, "new clinical", slicer.mrmlScene))
        self.assertEqual(list(prediction.index), ["P900", "P901"])
        self.assertTrue(prediction["probability"].between(0, 1).all())
        self.assertGreater(prediction.loc["P900", "probability"], prediction.loc["P901", "probability"])
        self.assertIsNotNone(slicer.mrmlScene.GetNodeByID(prediction.attrs["tableNodeID"]))

        self.delayDisplay("Predicting for the current patient's segments (a Tumor Features table)")
        segments = newFeatures.iloc[[0]].set_index(pd.Index(["GTVp"], name="segment"))
        onePatient = newClinical.iloc[[0]]
        prediction = logic.predict(result["paths"]["model"],
                                   mrml.dataframe_to_table_node(segments, "P900 features", slicer.mrmlScene),
                                   mrml.dataframe_to_table_node(onePatient, "P900 clinical", slicer.mrmlScene))
        self.assertEqual(list(prediction.index), ["GTVp"])
        self.assertIn("probability", logic.predictionSummary(prediction))
        self.delayDisplay("Test passed")

    def test_BootstrapHeatMap(self):
        selftests.requirePackages(self, ["core", "modelling"])
        self.delayDisplay("Bootstrap protocol: results, ROC and the grid heat map in the scene")
        features, clinical = self.makeTables(n=40, seed=1)
        result = ResponseModelLogic().run({"planted": features}, clinical, "outcome_response", [], "bootstrap",
                                          ["wilcoxon"], ["lda"], k=3, nBootstrap=20, forward=False, positive="1",
                                          outputFolder=self._outputFolder("bootstrap"))
        self.assertEqual(result["results"].GetNumberOfRows(), 1)
        self.assertGreater(result["evaluation"].best["auc632plus"], 0.7)
        self.assertEqual(list(result["heatmaps"]), ["grid planted"])
        self.assertTrue(slicer.mrmlScene.IsNodePresent(result["heatmaps"]["grid planted"]))
        self.delayDisplay("Test passed")

    def test_Cancel(self):
        selftests.requirePackages(self, ["core", "modelling"])
        from rtresponse.models.grid import Cancelled

        self.delayDisplay("Cancelling a run")
        features, clinical = self.makeTables()
        tablesBefore = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode")
        calls = []
        with self.assertRaises(Cancelled):
            ResponseModelLogic().run({"planted": features}, clinical, "outcome_response", [], "split",
                                     ["wilcoxon", "chi2"], ["lda"], k=3, outputFolder=self._outputFolder("cancel"),
                                     shouldCancel=lambda: calls.append(1) or len(calls) > 1)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode"), tablesBefore)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode"), 0)
        self.delayDisplay("Test passed")

    # --- inflated 3D network (I3D)

    I3D_SMALL = {"weights": "random", "shape": (32, 32, 8), "spacing": (2.0, 2.0, 3.0), "margin": 4.0}  # plumbing only

    def _i3dCohort(self, folder, n=30):
        """A small synthetic cohort (T1, T2, GTVp, clin_ factors, outcome_response) written under ``folder``."""
        from rtresponse.sampledata.synthetic import write_cohort

        return write_cohort(os.path.join(folder, "cohort"), n_patients=n, seed=0)

    def test_I3DTrainAndPredict(self):
        selftests.requirePackages(self, ["core", "modelling", "deep"])
        import shutil
        import tempfile

        from rtresponse import mrml
        from rtresponse.cohort import load_manifest
        from rtresponse.errors import InputError

        logic = ResponseModelLogic()
        self.assertEqual(logic.parseClinicalValues("age=63; HPV=positive;clin_T_stage=3"),
                         {"age": 63.0, "HPV": "positive", "T_stage": 3.0})
        self.assertEqual(logic.parseNumbers("96 96 24", "input size", integer=True), (96, 96, 24))
        with self.assertRaises(InputError):
            logic.parseNumbers("96 96", "input size", integer=True)
        folder = tempfile.mkdtemp(prefix="ResponseModelTest-i3d-", dir=slicer.app.temporaryPath)
        try:
            self.delayDisplay("I3D: training on a small synthetic cohort (random backbone weights, a tiny input)")
            manifest = self._i3dCohort(folder)
            stages = []
            # factors without missing values: a number missing only outside the training part has no fill value
            result = logic.trainI3D(manifest, "response", "1", ["T1", "T2"], "GTVp", maxEpochs=5,
                                    clinicalFactors="age sex clin_T_stage N_stage HPV",
                                    outputFolder=os.path.join(folder, "out"), device="cpu",
                                    progress=lambda stage, done, total: stages.append(stage), **self.I3D_SMALL)
            frame = mrml.table_node_to_dataframe(result["results"])
            self.assertTrue(slicer.mrmlScene.IsNodePresent(result["results"]))
            self.assertEqual(result["results"].GetName(), "I3D results")
            self.assertEqual(list(frame["model"]), ["DLR (MR)", "DLR (MR + CF)"])
            self.assertTrue(frame["auc"].between(0.0, 1.0).all())
            self.assertEqual(result["lossChart"].GetNumberOfPlotSeriesNodes(), 4)  # training and validation x 2
            self.assertEqual(stages[0], "features")
            self.assertIn("DLR (MR + CF)", stages)
            for name in ("dlr_mr.pt", "dlr_mr_cf.pt", "metrics.csv", "loss_curves.png", "model_card.json"):
                self.assertTrue(os.path.isfile(os.path.join(folder, "out", name)), name)
            self.assertEqual(os.path.basename(str(result["modelPath"])), "dlr_mr_cf.pt")
            self.assertIn("not a usable model", logic.i3dSummary(result))
            info = logic.i3dModelInfo(result["modelPath"])
            self.assertEqual(info["sequences"], ["T1", "T2"])
            self.assertEqual(len(info["factors"]), 3)

            self.delayDisplay("I3D: predicting the current patient from the scene")
            nodes = mrml.load_patient(load_manifest(manifest), "P001", scene=slicer.mrmlScene)
            segmentation = nodes["segmentation"]
            gtvId = segmentation.GetSegmentation().GetSegmentIdBySegmentName("GTVp")
            clinical = logic.clinicalValues(nodes["clinical"])
            self.assertTrue(set(info["factors"]) <= set(clinical))
            self.assertNotIn("response", clinical)  # outcomes are never inputs
            volumes = {"T1": nodes["volumes"]["T1"], "T2": nodes["volumes"]["T2"]}
            segmentsBefore = segmentation.GetSegmentation().GetNumberOfSegments()
            prediction = logic.predictI3D(result["modelPath"], volumes, segmentation, gtvId, clinical, device="cpu")
            self.assertTrue(0.0 <= prediction["probability"] <= 1.0)
            self.assertEqual(prediction["predicted"], int(prediction["probability"] >= prediction["cutoff"]))
            self.assertEqual(prediction["notGiven"], [])
            self.assertIsNotNone(slicer.mrmlScene.GetNodeByID(prediction["tableNodeID"]))
            self.assertIn("Predicted:", logic.i3dPredictionSummary(prediction))
            self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), segmentsBefore)  # only read

            self.delayDisplay("I3D: a missing sequence and missing clinical values are named")
            with self.assertRaises(InputError):
                logic.predictI3D(result["modelPath"], {"T1": volumes["T1"]}, segmentation, gtvId, clinical,
                                 device="cpu")
            with self.assertRaises(InputError):
                logic.predictI3D(result["modelPath"], volumes, segmentation, gtvId, {}, device="cpu")
            imageOnly = logic.predictI3D(result["paths"]["DLR (MR)"], volumes, segmentation, gtvId, device="cpu")
            self.assertTrue(0.0 <= imageOnly["probability"] <= 1.0)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("Test passed")

    def test_I3DCancel(self):
        selftests.requirePackages(self, ["core", "modelling", "deep"])
        import shutil
        import tempfile

        from rtresponse.models.i3d.features import Cancelled

        self.delayDisplay("I3D: cancelling a training")
        folder = tempfile.mkdtemp(prefix="ResponseModelTest-i3d-cancel-", dir=slicer.app.temporaryPath)
        try:
            manifest = self._i3dCohort(folder, n=12)
            tablesBefore = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode")
            calls = []
            with self.assertRaises(Cancelled):
                ResponseModelLogic().trainI3D(manifest, "response", "1", ["T1", "T2"], "GTVp", maxEpochs=5,
                                              outputFolder=os.path.join(folder, "out"), device="cpu",
                                              shouldCancel=lambda: calls.append(1) or len(calls) > 3, **self.I3D_SMALL)
            self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode"), tablesBefore)
            self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode"), 0)
            self.assertFalse(os.path.exists(os.path.join(folder, "out", "dlr_mr.pt")))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("Test passed")
