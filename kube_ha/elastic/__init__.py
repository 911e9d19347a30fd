"""The elastic control plane: apiserver Deployment + HPA, leader-elected controller-manager and scheduler."""
