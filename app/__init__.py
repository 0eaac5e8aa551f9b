"""configpin: pins every ReplicaSet to the ConfigMaps and Secrets it was created with."""
