# Every node past the first: the other servers (server_count = 3) and the agents. Same image, type,
# disk, security group and cloud-init as the first server; each has its own flexible IP for Ansible.
resource "scaleway_instance_ip" "node" {
  for_each = local.extra_nodes

  type       = "routed_ipv4"
  zone       = var.zone
  project_id = var.project_id
  tags       = concat(local.tags, ["k3s-${each.value}"])
}

resource "scaleway_instance_server" "node" {
  for_each = local.extra_nodes

  name       = each.key
  type       = var.instance_type
  image      = var.image
  zone       = var.zone
  project_id = var.project_id
  tags       = concat(local.tags, ["k3s-${each.value}"])

  ip_id             = scaleway_instance_ip.node[each.key].id
  security_group_id = scaleway_instance_security_group.this.id

  root_volume {
    size_in_gb  = var.disk_gb
    volume_type = var.root_volume_type
  }

  user_data = {
    cloud-init = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
      hostname = each.key
      ssh_user = var.ssh_user
    })
  }

  depends_on = [scaleway_iam_ssh_key.this]
}

################################################################################
# Private network between the nodes (a VPC of its own: new projects have no default VPC)
################################################################################

resource "scaleway_vpc" "this" {
  count = local.private_network ? 1 : 0

  name       = "${var.name}-vpc"
  region     = local.region
  project_id = var.project_id
  tags       = local.tags
}

resource "scaleway_vpc_private_network" "this" {
  count = local.private_network ? 1 : 0

  name       = "${var.name}-pn"
  vpc_id     = scaleway_vpc.this[0].id
  region     = local.region
  project_id = var.project_id
  tags       = local.tags

  ipv4_subnet {
    subnet = var.private_network_cidr
  }
}

# One reserved address per node, so K3s's node-ip and the load balancer backends are known in the plan.
resource "scaleway_ipam_ip" "node" {
  for_each = local.private_ips

  address    = each.value
  region     = local.region
  project_id = var.project_id
  tags       = local.tags

  source {
    private_network_id = scaleway_vpc_private_network.this[0].id
  }
}

resource "scaleway_instance_private_nic" "node" {
  for_each = local.private_ips

  server_id          = each.key == var.name ? scaleway_instance_server.this.id : scaleway_instance_server.node[each.key].id
  private_network_id = scaleway_vpc_private_network.this[0].id
  ipam_ip_ids        = [scaleway_ipam_ip.node[each.key].id]
  zone               = var.zone
  tags               = local.tags
}
