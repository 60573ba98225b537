"""Response Model module: feature selection x classifiers judged by bootstrap (Tanaka et al.) or train/test
validation (Jeong et al.), and prediction with a saved model. The inflated 3D network is the Response Model (I3D)
module.

A thin widget over RadiotherapyResponseLib.responsemodel: the evaluation (``rtresponse evaluate`` on the checked
tables, exported to a job folder) is a background job in a child process (progress, Cancel; Slicer stays usable);
its results come back as a results table, a ROC chart and, for bootstrap, one AUC grid table per feature set.
Prediction with a saved .skops model takes well under a second and stays in process. The Logic evaluates in
process, for scripts.
"""

import os
from typing import Annotated

import vtk

import slicer
from RadiotherapyResponseLib import responsemodel as rm
from RadiotherapyResponseLib import selftests
from RadiotherapyResponseLib.jobpanel import JobPanel
from RadiotherapyResponseLib.modulewidget import JobModuleWidget
from RadiotherapyResponseLib.notices import RESEARCH_USE_ONLY, researchUseLabel
from RadiotherapyResponseLib.slicerutils import hubSettings, showTable
from RadiotherapyResponseLib.widgets import checkedItems, showCheckList, showComboItems, showPath
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
TITLE = "Response Model"
RUN_TIP = "Evaluate every feature set x selector x classifier and save the best model."
PREDICT_TIP = "Apply the model to the rows of the patient's feature table."
RESULTS_FOLDER = "ResponseModel"  # runs go to <models folder>/ResponseModel/<outcome>-<date>-<time>


class ResponseModel(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = TITLE
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = ["RadiotherapyResponse"]  # the hub module carries rtresponse
        self.parent.contributors = ["RadiotherapyResponse developers"]
        self.parent.helpText = RESEARCH_USE_ONLY + """
Builds and judges response models. Pick feature tables (table nodes or a CSV file, one row per patient with a
patient_id column), the clinical table (one row per patient: clin_* factors and outcome_* columns), the outcome and
the clinical factors to add, then the protocol: <b>bootstrap</b> (every selector x classifier, 0.632+ bootstrap AUC,
Tanaka et al.) or <b>split</b> (one stratified train/test split; the model is chosen by cross-validation on the
training patients and tested once, with DeLong CI, NRI and IDI between the feature sets' chosen models, Jeong et
al.). Each table is a feature set; with clinical factors, the clinical factors alone and all sets combined are
evaluated too. Run evaluates in a background job (Cancel stops it; the scene stays usable) and makes a results table,
a ROC chart and, for bootstrap, one table per feature set with the grid's AUCs (selector x classifier); the chosen
model (.skops) and its model card go to the models folder of the Radiotherapy Response settings (or the output
folder you choose), so a saved scene can predict again. Predict applies a saved model to the current patient's
features. The inflated 3D network (I3D) is in the Response Model (I3D) module.
See <a href="https://github.com/RadiotherapyResponse/SlicerRadiotherapyResponse">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Methods of Tanaka et al. (head and neck, 0.632+ bootstrap over five selectors and five classifiers) and Jeong et al.
(cervical cancer, train/test validation with DeLong, NRI and IDI). Built on scikit-learn and skops.
"""


@parameterNodeWrapper
class ResponseModelParameterNode:
    """Module state, saved with the scene. clinicalTable: one row per patient with clin_* factors and outcome_*
    columns; outcomeColumn; clinicalColumns: the clinical factors added to the features; featureCsv: a feature table
    file used besides the checked table nodes; positive: the positive outcome value. protocol, selectors,
    classifiers, k, nBootstrap, forward: the evaluation. outputFolder: where runs go (empty: the models folder).
    resultsTable, rocChart, modelPath: the latest run's outputs. predictFeatureTable, predictClinicalTable: the
    patient to predict."""

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


class ResponseModelWidget(JobModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Parameter node, scene close and job-folder plumbing: JobModuleWidget (RadiotherapyResponseLib)."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.panel = self._parameterNode = self._parameterNodeGuiTag = None
        self._observedClinicalTable = None
        self._methodNames = ([], [])
        self._pathInputs = []  # (ctkPathLineEdit, str parameter): Slicer binds a str to one only as a Path

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.layout.addWidget(researchUseLabel())
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ResponseModel.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = ResponseModelLogic()
        self._methodNames = self.logic.methodNames()
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.panel = JobPanel(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton,
                              [self.ui.runButton, self.ui.predictButton], onChange=self.updateGUI)
        self.observeScene(slicer.mrmlScene)
        # Bound through SlicerParameterName in the .ui: clinical table, positive class, protocol, k, bootstrap count,
        # forward selection and the node selectors. The outcome (filled from the table), the checkable lists and the
        # paths are synchronised here; the checked feature tables are GUI state only.
        self.ui.featureTablesSelector.connect("checkedNodesChanged()", self.updateGUI)
        self.ui.outcomeComboBox.connect("currentIndexChanged(int)", lambda index: index >= 0 and self._setParameter(
            "outcomeColumn", self.ui.outcomeComboBox.itemText(index)))
        for listWidget, parameter in ((self.ui.clinicalFactorsListWidget, "clinicalColumns"),
                                      (self.ui.selectorsListWidget, "selectors"),
                                      (self.ui.classifiersListWidget, "classifiers")):
            listWidget.connect("itemChanged(QListWidgetItem*)", lambda item, widget=listWidget, name=parameter:
                               self._setParameter(name, checkedItems(widget)))
        self._pathInputs = [(self.ui.featureCsvPathLineEdit, "featureCsv"),
                            (self.ui.outputFolderPathLineEdit, "outputFolder"),
                            (self.ui.modelPathLineEdit, "modelPath")]
        for lineEdit, parameter in self._pathInputs:
            lineEdit.connect("currentPathChanged(QString)", lambda path, name=parameter: self._setParameter(name, path))
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.predictButton.connect("clicked(bool)", self.onPredictButton)
        self.initializeParameterNode()

    def guessInputs(self, p):
        if not p.methodDefaultsApplied:  # the papers' selectors and classifiers, once per scene
            selectors, classifiers = self.logic.paperMethods()
            p.selectors, p.classifiers, p.methodDefaultsApplied = list(selectors), list(classifiers), True
        if not p.clinicalTable:  # the first table with outcome columns is the clinical table
            for table in slicer.util.getNodesByClass("vtkMRMLTableNode"):
                if any(c.startswith(rm.OUTCOME_PREFIX) for c in self.logic.tableColumns(table)):
                    p.clinicalTable = table
                    break

    def updateGUI(self, *unused):
        """Follow the parameter node: outcome and clinical factor lists, method lists, paths, buttons."""
        p = self._parameterNode
        if p:
            self._observeClinicalTable(p.clinicalTable)
            columns = self.logic.tableColumns(p.clinicalTable)
            outcomes = [c for c in columns if c.startswith(rm.OUTCOME_PREFIX)]
            if outcomes and p.outcomeColumn not in outcomes:
                p.outcomeColumn = outcomes[0]  # (updates the GUI once more, with a consistent state)
            showComboItems(self.ui.outcomeComboBox, outcomes, p.outcomeColumn)
            showCheckList(self.ui.clinicalFactorsListWidget, [c for c in columns if c.startswith(rm.CLINICAL_PREFIX)],
                          p.clinicalColumns)
            showCheckList(self.ui.selectorsListWidget, self._methodNames[0], p.selectors)
            showCheckList(self.ui.classifiersListWidget, self._methodNames[1], p.classifiers)
            for lineEdit, parameter in self._pathInputs:
                showPath(lineEdit, getattr(p, parameter))
            self.ui.bootstrapSpinBox.enabled = self.ui.forwardCheckBox.enabled = p.protocol == "bootstrap"
        problem = rm.runProblem(p, self.featureTables(), self.clinicalColumns(), self.logic.tableColumns)
        self.ui.inputSummaryLabel.text = problem or self.runSummary()
        self.showProblem(self.ui.runButton, problem, RUN_TIP)
        self.showProblem(self.ui.predictButton, rm.predictProblem(p), PREDICT_TIP)

    def _observeClinicalTable(self, table):
        """Columns added to or removed from the clinical table change the outcome and factor lists."""
        if table is not self._observedClinicalTable:
            if self._observedClinicalTable:
                self.removeObserver(self._observedClinicalTable, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
            self._observedClinicalTable = table
            if table:
                self.addObserver(table, vtk.vtkCommand.ModifiedEvent, self.updateGUI)

    def featureTables(self):
        """{name: table node or CSV path} of the checked table nodes and the CSV file."""
        tables = {}
        for node in self.ui.featureTablesSelector.checkedNodes():
            tables[rm.uniqueName(node.GetName(), tables)] = node
        csv = self._parameterNode.featureCsv if self._parameterNode else ""
        if csv:
            tables[rm.uniqueName(os.path.splitext(os.path.basename(csv))[0], tables)] = csv
        return tables

    def clinicalColumns(self):
        """The checked clinical factors that the current clinical table has."""
        p = self._parameterNode
        return [c for c in self.logic.tableColumns(p.clinicalTable) if c in set(p.clinicalColumns)] if p else []

    def runSummary(self):
        p = self._parameterNode
        sets = self.logic.featureSetNames(list(self.featureTables()), bool(self.clinicalColumns()))
        return (f"{len(sets)} feature set(s) ({', '.join(sets)}) x {len(p.selectors)} selector(s) x "
                f"{len(p.classifiers)} classifier(s) = {len(sets) * len(p.selectors) * len(p.classifiers)} model(s).")

    def _installed(self, label):
        import RadiotherapyResponse

        if RadiotherapyResponse.ensureDependencies(DEPENDENCY_GROUPS):
            self._methodNames = self.logic.methodNames()  # every selector is listed once scikit-learn is there
            return True
        label.text = "scikit-learn and skops are needed to build and load models: they were not installed."
        return False

    def onRunButton(self):
        """Evaluate in a background job: the checked tables and the clinical table go to a job folder, `rtresponse
        evaluate` runs with the hub's Workers and its results come back as nodes (see responsemodel)."""
        if not self._installed(self.ui.statusLabel):
            return
        self.updateGUI()
        p, hub = self._parameterNode, hubSettings()
        selectorNames, classifierNames = self._methodNames
        tables, outcomeColumn, protocol = self.featureTables(), p.outcomeColumn, p.protocol
        folder, written = self.exportToJobFolder(
            "ResponseModel", lambda path: rm.exportInputs(path, tables, p.clinicalTable, outcomeColumn))
        if folder is None:
            return
        out = rm.resultsFolder(p.outputFolder or os.path.join(os.path.expanduser(hub.models_folder), RESULTS_FOLDER),
                               outcomeColumn)
        arguments = rm.evaluateArguments(
            written["manifest"], written["features"], outcomeColumn, out, self.clinicalColumns(), protocol,
            [s for s in selectorNames if s in p.selectors], [c for c in classifierNames if c in p.classifiers],
            p.k, p.nBootstrap, p.forward, p.positive, jobs=hub.workers)
        inputs = [node for node in [*tables.values(), p.clinicalTable] if hasattr(node, "GetID")]
        self.panel.start(arguments, "Evaluating models...",
                         lambda result: self._showEvaluation(rm.loadResults(out, outcomeColumn, slicer.mrmlScene,
                                                                            protocol)),
                         onFailure=lambda result: slicer.util.errorDisplay(
                             f"Model evaluation failed: {result.message}", windowTitle=TITLE),
                         folder=folder, inputs=inputs, scene=slicer.mrmlScene,
                         cancelledText="Cancelled: nothing was added to the scene.")

    def _showEvaluation(self, loaded):
        self._setParameter("resultsTable", loaded["results"])
        self._setParameter("rocChart", loaded["roc"])
        self._setParameter("modelPath", str(loaded["model"]))
        card = loaded["card"]
        self.ui.predictionLabel.text = (f"Model: {card.get('description', '')}; {card.get('probability', '')}, "
                                        f"cut-off {float(card.get('cutoff', 0.5)):.3g}.")
        self.logic.showResults(loaded)
        return rm.summary(loaded)

    def onPredictButton(self):
        if not self._installed(self.ui.predictionLabel):
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Prediction failed.", waitCursor=True):
            try:
                prediction = self.logic.predict(p.modelPath, p.predictFeatureTable, p.predictClinicalTable)
            except Exception as error:
                self.ui.predictionLabel.text = f"Failed: {error}"
                raise
            self.ui.predictionLabel.text = self.logic.predictionSummary(prediction)
            showTable(slicer.mrmlScene.GetNodeByID(prediction.attrs["tableNodeID"]))


class ResponseModelLogic(ScriptedLoadableModuleLogic):
    """Scriptable entry points: evaluation in process (the widget runs it as a background job), prediction."""

    predictionSummary = staticmethod(rm.predictionSummary)
    summary = staticmethod(rm.summary)
    paperMethods = staticmethod(rm.paperMethods)  # () -> (selectors, classifiers) of Tanaka et al.
    methodNames = staticmethod(rm.methodNames)  # () -> (selector names, classifier names) that can be chosen
    tableColumns = staticmethod(rm.tableColumns)
    featureSetNames = staticmethod(rm.featureSetNames)  # (table names, with clinical) -> feature set names

    def getParameterNode(self):
        return ResponseModelParameterNode(super().getParameterNode())

    @staticmethod
    def run(featureTables, clinicalTable, outcomeColumn, clinicalColumns=(), protocol="bootstrap", selectors=None,
            classifiers=None, k=10, nBootstrap=1000, forward=True, positive="1", outputFolder=None, progress=None,
            shouldCancel=None, scene=None):
        """Evaluate feature sets against an outcome in process (as the widget's job does) and put the results into
        the scene. ``featureTables``: {name: table node, DataFrame or CSV path}; ``clinicalTable``: the table with
        ``outcomeColumn`` and the ``clinicalColumns`` to add; ``selectors``/``classifiers``: names (None: the
        papers'); ``outputFolder``: None makes a new one in Slicer's temporary folder. ``progress(done, total)``;
        ``shouldCancel()`` raises ``rtresponse.errors.Cancelled`` and nothing is added to the scene.

        Returns {"results", "roc", "heatmaps": {feature set: AUC grid table}, "model", "card", "outputFolder",
        "best", "evaluation"} (responsemodel.loadResults)."""
        out = outputFolder or rm.resultsFolder(os.path.join(slicer.app.temporaryPath, RESULTS_FOLDER), outcomeColumn)
        return rm.evaluateInProcess(featureTables, clinicalTable, outcomeColumn, out, scene or slicer.mrmlScene,
                                    clinicalColumns, protocol, selectors, classifiers, k, nBootstrap, forward,
                                    positive, progress, shouldCancel)

    @staticmethod
    def showResults(loaded):
        """The results table and the ROC chart in a layout with table and plot views (needs the application's
        layout)."""
        if slicer.app.layoutManager() is None:
            return
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        selectionNode.SetActiveTableID(loaded["results"].GetID())
        selectionNode.SetActivePlotChartID(loaded["roc"].GetID())
        slicer.app.applicationLogic().PropagateTableSelection()
        slicer.app.applicationLogic().PropagatePlotChartSelection()

    @staticmethod
    def predict(modelPath, featureTable, clinicalTable=None, tableName=None):
        """Probabilities of a saved model for the rows of a feature table (responsemodel.predict)."""
        return rm.predict(modelPath, featureTable, clinicalTable, tableName=tableName)
class ResponseModelTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):  # a test whose packages are absent is skipped with a message; the others run
        selftests.runEach(self, (self.test_SplitAndPredict, self.test_BootstrapGridAndCancel))

    def makeTables(self, n=60, seed=0):
        """A planted cohort as table nodes: features (feature_0 carries the outcome) and a clinical table
        (clin_age, clin_stage with a missing value, outcome_response); returns (features node, clinical node)."""
        import numpy as np
        import pandas as pd
        from rtresponse import mrml

        rng = np.random.default_rng(seed)
        ids = pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id")
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

    def test_SplitAndPredict(self):
        selftests.requirePackages(self, ["core", "modelling"])
        import pandas as pd
        from rtresponse import mrml

        self.delayDisplay("Split protocol on a planted table (in process, as the job)")
        features, clinical = self.makeTables()
        logic = ResponseModelLogic()
        result = logic.run({"planted": features}, clinical, "outcome_response", ["clin_age", "clin_stage"], "split",
                           ["wilcoxon"], ["lda"], k=3, positive="1")
        frame = mrml.table_node_to_dataframe(result["results"])
        self.assertEqual(list(frame["feature_set"]), ["planted", "clinical", "planted+clinical"])
        auc = frame.set_index("feature_set")["auc"]
        self.assertGreater(auc["planted"], 0.75)  # the planted signal is learnt...
        self.assertLess(auc["clinical"], auc["planted"])  # ...and not from noise
        self.assertTrue(slicer.mrmlScene.IsNodePresent(result["roc"]))
        self.assertIn("P000", result["evaluation"].dropped)
        self.assertTrue(os.path.isfile(result["model"]))

        self.delayDisplay("Predicting with the saved model, for patients and for one patient's segments")
        ids = pd.Index(["P900", "P901"], name="patient_id")
        newFeatures = pd.DataFrame({f"feature_{j}": [0.0, 0.0] for j in range(6)}, index=ids)
        newFeatures["feature_0"] = [3.0, -3.0]
        newClinical = pd.DataFrame({"clin_age": [60.0, 60.0], "clin_stage": ["II", "II"]}, index=ids)
        prediction = logic.predict(result["model"], mrml.dataframe_to_table_node(newFeatures, "new", slicer.mrmlScene),
                                   mrml.dataframe_to_table_node(newClinical, "new clinical", slicer.mrmlScene))
        self.assertGreater(prediction.loc["P900", "probability"], prediction.loc["P901", "probability"])
        self.assertIsNotNone(slicer.mrmlScene.GetNodeByID(prediction.attrs["tableNodeID"]))
        segments = newFeatures.iloc[[0]].set_index(pd.Index(["GTVp"], name="segment"))
        prediction = logic.predict(result["model"], mrml.dataframe_to_table_node(segments, "P900", slicer.mrmlScene),
                                   mrml.dataframe_to_table_node(newClinical.iloc[[0]], "P900 clinical",
                                                                slicer.mrmlScene))
        self.assertEqual(list(prediction.index), ["GTVp"])
        self.assertIn("probability", logic.predictionSummary(prediction))
        self.delayDisplay("Test passed")

    def test_BootstrapGridAndCancel(self):
        selftests.requirePackages(self, ["core", "modelling"])
        from rtresponse import mrml
        from rtresponse.errors import Cancelled

        self.delayDisplay("Bootstrap protocol: results, ROC and the AUC grid as a table")
        features, clinical = self.makeTables(n=40, seed=1)
        result = ResponseModelLogic().run({"planted": features}, clinical, "outcome_response", [], "bootstrap",
                                          ["wilcoxon"], ["lda"], k=3, nBootstrap=20, forward=False)
        self.assertGreater(result["evaluation"].best["auc632plus"], 0.7)
        grid = mrml.table_node_to_dataframe(result["heatmaps"]["planted"])
        self.assertEqual(list(grid["selector"]), ["wilcoxon"])

        self.delayDisplay("Cancelling a run")
        tablesBefore = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode")
        calls = []
        with self.assertRaises(Cancelled):
            ResponseModelLogic().run({"planted": features}, clinical, "outcome_response", [], "split",
                                     ["wilcoxon", "chi2"], ["lda"], k=3,
                                     shouldCancel=lambda: calls.append(1) or len(calls) > 1)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode"), tablesBefore)
        self.delayDisplay("Test passed")
