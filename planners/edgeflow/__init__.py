"""EdgeFlow: DAG partitioning of one DNN inference across heterogeneous edge devices (issue 10)."""
