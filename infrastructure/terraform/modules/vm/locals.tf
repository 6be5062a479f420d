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

  # Past one VM. The first server stays scaleway_instance_server.this (a single VM's plan is unchanged);
  # the other servers and the agents are scaleway_instance_server.node, keyed by name so that adding an
  # agent never renames another.
  extra_nodes = merge(
    { for i in range(1, var.server_count) : "${var.name}-server-${i + 1}" => "server" },
    { for i in range(var.agent_count) : "${var.name}-agent-${i + 1}" => "agent" },
  )
  node_roles = merge({ (var.name) = "server" }, local.extra_nodes)
  # A private network exists as soon as nodes must talk to each other or a load balancer reaches them.
  private_network = length(local.node_roles) > 1 || var.lb_enabled
  # Fixed private addresses (reserved in IPAM), in node order: known at plan time, so the inventory and
  # the load balancer backends never wait for an apply. .1 is the gateway; nodes start at .10.
  node_names  = concat([var.name], sort([for n, r in local.extra_nodes : n if r == "server"]), sort([for n, r in local.extra_nodes : n if r == "agent"]))
  private_ips = local.private_network ? { for i, n in local.node_names : n => cidrhost(var.private_network_cidr, 10 + i) } : {}
  region      = join("-", slice(split("-", var.zone), 0, 2))

  # K3s ports opened only to the private network (embedded etcd, supervisor/API, kubelet, flannel VXLAN).
  # Scaleway security groups filter the public interface: these rules keep the ports closed there, and the
  # private network carries only this cluster's nodes.
  cluster_ports = local.private_network ? [
    { protocol = "TCP", port_range = "6443-6443" },
    { protocol = "TCP", port_range = "2379-2380" },
    { protocol = "TCP", port_range = "10250-10250" },
    { protocol = "UDP", port_range = "8472-8472" },
  ] : []

  # Inventory entries of the extra nodes (the first server's entry is written out in outputs.tf).
  node_host = {
    for name, role in local.extra_nodes : name => {
      ansible_host                 = scaleway_instance_ip.node[name].address
      ansible_user                 = var.ssh_user
      ansible_ssh_private_key_file = var.ssh_private_key_path
      k3s_node_external_ip         = scaleway_instance_ip.node[name].address
      k3s_node_ip                  = local.private_ips[name]
    }
  }
}
