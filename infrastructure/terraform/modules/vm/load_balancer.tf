# Optional Scaleway load balancer in front of the ingress: TCP 80 and 443 passed through to every
# node's private address, where K3s's ServiceLB exposes ingress-nginx; TLS stays with cert-manager's
# certificates on the ingress. A node that stops answering is taken out by the TCP health check.
resource "scaleway_lb_ip" "this" {
  count = var.lb_enabled ? 1 : 0

  zone       = var.zone
  project_id = var.project_id
  tags       = local.tags
}

resource "scaleway_lb" "this" {
  count = var.lb_enabled ? 1 : 0

  name       = "${var.name}-lb"
  type       = var.lb_type
  zone       = var.zone
  project_id = var.project_id
  ip_ids     = [scaleway_lb_ip.this[0].id]
  tags       = local.tags

  private_network {
    private_network_id = scaleway_vpc_private_network.this[0].id
  }
}

resource "scaleway_lb_backend" "ingress" {
  for_each = var.lb_enabled ? toset(["80", "443"]) : toset([])

  lb_id            = scaleway_lb.this[0].id
  name             = "${var.name}-ingress-${each.key}"
  forward_protocol = "tcp"
  forward_port     = tonumber(each.key)
  server_ips       = [for n in local.node_names : local.private_ips[n]]

  health_check_tcp {}
}

resource "scaleway_lb_frontend" "ingress" {
  for_each = var.lb_enabled ? toset(["80", "443"]) : toset([])

  lb_id        = scaleway_lb.this[0].id
  backend_id   = scaleway_lb_backend.ingress[each.key].id
  name         = "${var.name}-ingress-${each.key}"
  inbound_port = tonumber(each.key)
}
