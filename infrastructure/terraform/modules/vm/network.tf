resource "scaleway_instance_ip" "this" {
  type       = "routed_ipv4"
  zone       = var.zone
  project_id = var.project_id
  tags       = local.tags
}
