resource "scaleway_instance_server" "this" {
  name       = var.name
  type       = var.instance_type
  image      = var.image
  zone       = var.zone
  project_id = var.project_id
  tags       = local.tags

  ip_id             = scaleway_instance_ip.this.id
  security_group_id = scaleway_instance_security_group.this.id

  root_volume {
    size_in_gb  = var.disk_gb
    volume_type = var.root_volume_type
  }

  user_data = {
    cloud-init = local.cloud_init
  }

  # The key must exist in the project before the server boots, or cloud-init will not install it.
  depends_on = [scaleway_iam_ssh_key.this]
}

resource "scaleway_iam_ssh_key" "this" {
  name       = "${var.name}-operator"
  public_key = trimspace(var.ssh_public_key)
  project_id = var.project_id
}
