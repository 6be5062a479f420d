locals {
  tags = distinct(concat(["k3smig", var.name], var.tags))

  # Ports open to the world: HTTP for ACME HTTP-01 challenges and redirects, HTTPS for the applications.
  public_ports = [80, 443]
  # Ports only the operator reaches: SSH for Ansible, the K3s API server for kubectl and the notebooks.
  admin_ports = [22, 6443]

  cloud_init = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    hostname = var.name
    ssh_user = var.ssh_user
  })
}
