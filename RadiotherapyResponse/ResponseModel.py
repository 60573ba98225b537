"""Response Model module: feature selection x classifiers judged by bootstrap or train/test validation, and prediction.

A thin widget over ``rtresponse.models`` (evaluate, write_outputs, persistence), which is imported lazily inside
functions so that loading this module is instant and never installs anything.
"""

import logging
import os
from typing import Annotated

import qt
import vtk

import slicer
from slicer import vtkMRMLPlotChartNode, vtkMRMLTableNode
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


class ResponseModel(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Response Model"
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = """
Builds and judges response models. Pick feature tables (table nodes or a CSV file, one row per patient with a
patient_id column), the clinical table (one row per patient: clin_* factors and outcome_* columns), the outcome and
the clinical factors to add, then the protocol: <b>bootstrap</b> (every selector x classifier, 0.632+ bootstrap AUC,
Tanaka et al.) or <b>split</b> (one stratified train/test split, test AUC with DeLong CI, comparison with the first
model, Jeong et al.). Each table is a feature set; with clinical factors, the clinical factors alone and all sets
combined are evaluated too. Run makes a results table, a ROC chart and, for bootstrap, the heat maps of the grid,
and saves the best model (.skops). Predict applies a saved model to the current patient's features.
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Methods of Tanaka et al. (head and neck, 0.632+ bootstrap over five selectors and five classifiers) and Jeong et al.
(cervical cancer, train/test validation with DeLong, NRI and IDI). Built on scikit-learn and skops.
"""


@parameterNodeWrapper
class ResponseModelParameterNode:
    """Module state, saved with the scene.

    clinicalTable: one row per patient with clin_* factors and outcome_* columns; outcomeColumn: the outcome;
    clinicalColumns: the clinical factors added to the features; featureCsv: a feature table file used besides the
    checked table nodes; positive: the positive outcome value. protocol, selectors, classifiers, k, nBootstrap,
    forward: the evaluation. outputFolder: where files go (empty: a new temporary folder per run). resultsTable,
    rocChart, modelPath: the latest run's outputs. predictFeatureTable, predictClinicalTable: the patient to predict.
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


class ResponseModelWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedClinicalTable = None
        self._run = None  # RadiotherapyResponse.CancellableRun, made in setup()
        self._methodNames = ([], [])

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ResponseModel.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = ResponseModelLogic()
        self._methodNames = self.logic.methodNames()
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.progressBar.hide()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
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
        import RadiotherapyResponse

        self._run = RadiotherapyResponse.CancellableRun(
            self.ui.cancelButton, self.ui.progressBar, self.ui.statusLabel,
            [self.ui.inputsCollapsibleButton,
             self.ui.settingsCollapsibleButton,
             self.ui.outputsCollapsibleButton,
             self.ui.predictCollapsibleButton],
            progressText="Evaluated {done} of {total} model(s)...",
            cancelText="Cancelling after the model being evaluated...", onChange=self.updateGUI)
        self.ui.predictButton.connect("clicked(bool)", self.onPredictButton)
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
        p = self._parameterNode
        if not p.methodDefaultsApplied:  # the papers' selectors and classifiers, once per scene
            selectors, classifiers = self.logic.paperMethods()
            p.selectors, p.classifiers, p.methodDefaultsApplied = list(selectors), list(classifiers), True
        # Save the user a few clicks: the first table with outcome columns is the clinical table
        if not p.clinicalTable:
            for table in slicer.util.getNodesByClass("vtkMRMLTableNode"):
                if any(c.startswith(OUTCOME_PREFIX) for c in self.logic.tableColumns(table)):
                    p.clinicalTable = table
                    break

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
        return self._run is not None and self._run.running

    def onRunButton(self):
        import RadiotherapyResponse

        if not RadiotherapyResponse.ensureDependencies(DEPENDENCY_GROUPS):
            self.ui.statusLabel.text = "scikit-learn and skops are needed to build models: they were not installed."
            return
        self._methodNames = self.logic.methodNames()  # every selector is listed once scikit-learn is there
        self.updateGUI()
        from rtresponse.models.grid import Cancelled

        p = self._parameterNode
        selectorNames, classifierNames = self._methodNames
        self._run.setRunning(True)
        self.ui.statusLabel.text = "Evaluating models..."
        try:
            with slicer.util.tryWithErrorDisplay("Model evaluation failed."):
                try:
                    result = self.logic.run(
                        self.featureTables(), p.clinicalTable, p.outcomeColumn, self.clinicalColumns(), p.protocol,
                        [s for s in selectorNames if s in p.selectors],
                        [c for c in classifierNames if c in p.classifiers],
                        p.k, p.nBootstrap, p.forward, p.positive, p.outputFolder or None,
                        progress=self._run.progress, shouldCancel=self._run.shouldCancel)
                except Cancelled:
                    self.ui.statusLabel.text = "Cancelled: nothing was added to the scene."
                    return
                except Exception as error:
                    self.ui.statusLabel.text = f"Failed: {error}"
                    raise
                p.resultsTable = result["results"]
                p.rocChart = result["roc"]
                p.modelPath = str(result["paths"]["model"])
                self.logic.showResults(result)
                self.ui.statusLabel.text = self.logic.summary(result)
        finally:
            self._run.setRunning(False)

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
        metric, label = ("auc632plus", "0.632+ AUC") if "auc632plus" in best else ("auc", "test AUC")
        text = (f"Best of {len(evaluation.results)} model(s): {best['feature_set']}, {best['selector']} + "
                f"{best['classifier']}, {label} {best[metric]:.3f} with {len(evaluation.features)} feature(s).\n"
                f"Results: '{result['results'].GetName()}'; ROC: '{result['roc'].GetName()}'.\n"
                f"Files in {result['outputFolder']}; model: {os.path.basename(str(result['paths']['model']))}.")
        if evaluation.dropped:
            first = next(iter(evaluation.dropped.items()))
            text += f"\n{len(evaluation.dropped)} patient(s) left out, e.g. {first[0]}: {first[1]}."
        return text

    def showResults(self, result):
        """Results table and ROC chart in a layout with table and plot views; the first heat map in the slice views
        (does nothing without the application's layout)."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:
            return
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        selectionNode.SetActiveTableID(result["results"].GetID())
        selectionNode.SetActivePlotChartID(result["roc"].GetID())
        slicer.app.applicationLogic().PropagateTableSelection()
        slicer.app.applicationLogic().PropagatePlotChartSelection()
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


class ResponseModelTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SplitAndPredict()
        self.setUp()
        self.test_BootstrapHeatMap()
        self.setUp()
        self.test_Cancel()

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
        import importlib.util

        import pandas as pd
        from rtresponse import mrml

        for module in ("sklearn", "skops", "matplotlib"):
            self.assertIsNotNone(importlib.util.find_spec(module), f"{module} is needed (Radiotherapy Response module)")
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
