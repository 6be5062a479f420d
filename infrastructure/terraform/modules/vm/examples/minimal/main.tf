# Minimal runnable root module: the VM with the defaults the seed asks for. The env root module under
# envs/ mirrors it. Credentials come from SCW_ACCESS_KEY / SCW_SECRET_KEY / SCW_DEFAULT_PROJECT_ID.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    scaleway = {
      source  = "scaleway/scaleway"
      version = "~> 2.81"
    }
  }
}

provider "scaleway" {
  zone = "fr-par-1"
}

module "vm" {
  source = "../.."

  name                 = "k3smig-minimal"
  admin_cidr           = "203.0.113.0/24"
  ssh_public_key       = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForDocumentationOnly0000000000 operator@example"
  ssh_private_key_path = pathexpand("~/.ssh/k3smig_ed25519")
}

output "public_ip" {
  description = "Public IPv4 address of the VM."
  value       = module.vm.public_ip
}

output "ansible_inventory" {
  description = "Ansible inventory rendered by the module."
  value       = module.vm.ansible_inventory
}
