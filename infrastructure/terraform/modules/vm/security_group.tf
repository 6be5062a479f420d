resource "scaleway_instance_security_group" "this" {
  name                    = "${var.name}-sg"
  zone                    = var.zone
  project_id              = var.project_id
  tags                    = local.tags
  stateful                = true
  inbound_default_policy  = "drop"
  outbound_default_policy = "accept"

  dynamic "inbound_rule" {
    for_each = local.admin_ports
    content {
      action   = "accept"
      protocol = "TCP"
      port     = inbound_rule.value
      ip_range = var.admin_cidr
    }
  }

  dynamic "inbound_rule" {
    for_each = local.public_ports
    content {
      action   = "accept"
      protocol = "TCP"
      port     = inbound_rule.value
      ip_range = "0.0.0.0/0"
    }
  }

  dynamic "inbound_rule" {
    for_each = local.cluster_ports
    content {
      action     = "accept"
      protocol   = inbound_rule.value.protocol
      port_range = inbound_rule.value.port_range
      ip_range   = var.private_network_cidr
    }
  }
}
