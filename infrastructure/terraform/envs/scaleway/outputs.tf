output "instance_id" {
  description = "ID of the instance (zone/uuid)."
  value       = module.vm.instance_id
}

output "public_ip" {
  description = "Public IPv4 address of the VM."
  value       = module.vm.public_ip
}

output "ssh_user" {
  description = "User Ansible connects as."
  value       = module.vm.ssh_user
}

output "private_key_path" {
  description = "Path of the SSH private key on the operator's machine."
  value       = module.vm.private_key_path
}

output "ansible_inventory" {
  description = "Ansible inventory rendered by the module."
  value       = module.vm.ansible_inventory
}

output "nodes" {
  description = "Every node by name: K3s role, public and private IPv4 (k3smig renders the inventory from it)."
  value       = module.vm.nodes
}

output "lb_ip" {
  description = "Public IPv4 of the load balancer in front of the ingress (null unless lb_enabled)."
  value       = module.vm.lb_ip
}
