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
  description = "Ansible YAML inventory with the VM in group k3s_servers (the same one k3smig renders from these outputs)."
  value = yamlencode({
    all = {
      children = {
        k3s_servers = {
          hosts = {
            (var.name) = {
              ansible_host                 = scaleway_instance_ip.this.address
              ansible_user                 = var.ssh_user
              ansible_ssh_private_key_file = var.ssh_private_key_path
              k3s_node_external_ip         = scaleway_instance_ip.this.address
            }
          }
        }
      }
    }
  })
}
