# A root module with no cloud provider: only the built-in terraform_data resource, so init, plan,
# apply, output and destroy run offline. It has the same outputs as envs/scaleway, so the driver
# tests can feed its outputs to the inventory renderer and to Ansible exactly as phase 10 does.
terraform {
  required_version = ">= 1.6.0"
}

variable "name" {
  description = "Name of the pretend VM."
  type        = string
  default     = "k3smig"
}

variable "public_ip" {
  description = "Address the pretend VM reports (127.0.0.1 lets Ansible reach it with a local connection)."
  type        = string
  default     = "127.0.0.1"

  validation {
    condition     = can(cidrhost("${var.public_ip}/32", 0))
    error_message = "var.public_ip must be an IPv4 address."
  }
}

variable "ssh_user" {
  description = "User the inventory names."
  type        = string
  default     = "root"
}

variable "ssh_private_key_path" {
  description = "Path of the private key the inventory names."
  type        = string
  default     = "/nonexistent/k3smig_ed25519"
}

variable "instance_type" {
  description = "Pretend instance type; changing it replaces the pretend server."
  type        = string
  default     = "GP1-XS"
}

resource "terraform_data" "server" {
  input = {
    name          = var.name
    instance_type = var.instance_type
    public_ip     = var.public_ip
  }
  triggers_replace = [var.instance_type]
}

resource "terraform_data" "ip" {
  input = var.public_ip
}

output "instance_id" {
  description = "ID of the pretend server."
  value       = "fr-par-1/${terraform_data.server.id}"
}

output "public_ip" {
  description = "Address of the pretend VM."
  value       = terraform_data.ip.output
}

output "ssh_user" {
  description = "User the inventory names."
  value       = var.ssh_user
}

output "private_key_path" {
  description = "Path of the private key the inventory names."
  value       = var.ssh_private_key_path
}
