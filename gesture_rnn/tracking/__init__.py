"""MLflow: the run of a training (``runs``), a sweep's parent run (``sweep``), the logged model
(``mlflow_model``), the Model Registry (``registry``) and the finished jobs of a multirun folder
(``trials``)."""
