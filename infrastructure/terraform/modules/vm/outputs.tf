output "instance_id" {
  description = "ID of the instance (zone/uuid)."
  value       = scaleway_instance_server.this.id
}

output "public_ip" {
  description = "Public IPv4 address of the VM (flexible IP, kept across server replacement)."
  value       = scaleway_instance_ip.this.address
}

output "ssh_user" {
  description = "User Ansible connects as."
  value       = var.ssh_user
}

output "private_key_path" {
  description = "Path of the SSH private key on the operator's machine (never the key itself)."
  value       = var.ssh_private_key_path
}

output "security_group_id" {
  description = "ID of the security group that drops everything but 22/6443 from the admin CIDR and 80/443."
  value       = scaleway_instance_security_group.this.id
}

output "ansible_inventory" {
  description = "Ansible YAML inventory: the first server and any others in group k3s_servers, agents in k3s_agents (the same one k3smig renders from these outputs)."
  value = yamlencode({
    all = {
      children = merge(
        {
          k3s_servers = {
            hosts = merge(
              {
                (var.name) = merge({
                  ansible_host                 = scaleway_instance_ip.this.address
                  ansible_user                 = var.ssh_user
                  ansible_ssh_private_key_file = var.ssh_private_key_path
                  k3s_node_external_ip         = scaleway_instance_ip.this.address
                }, local.private_network ? { k3s_node_ip = local.private_ips[var.name] } : {})
              },
              { for name, role in local.extra_nodes : name => local.node_host[name] if role == "server" },
            )
          }
        },
        var.agent_count > 0 ? {
          k3s_agents = {
            hosts = { for name, role in local.extra_nodes : name => local.node_host[name] if role == "agent" }
          }
        } : {},
      )
    }
  })
}

output "nodes" {
  description = "Every node by name: its K3s role (server or agent), public IPv4 and private IPv4 (null on a single VM)."
  value = merge(
    {
      (var.name) = {
        role       = "server"
        public_ip  = scaleway_instance_ip.this.address
        private_ip = lookup(local.private_ips, var.name, null)
      }
    },
    {
      for name, role in local.extra_nodes : name => {
        role       = role
        public_ip  = scaleway_instance_ip.node[name].address
        private_ip = local.private_ips[name]
      }
    },
  )
}

output "private_network_id" {
  description = "ID of the private network between the nodes (null on a single VM without load balancer)."
  value       = local.private_network ? scaleway_vpc_private_network.this[0].id : null
}

output "lb_ip" {
  description = "Public IPv4 address of the load balancer in front of the ingress (null unless lb_enabled)."
  value       = var.lb_enabled ? scaleway_lb_ip.this[0].ip_address : null
}
