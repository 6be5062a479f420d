# Root module driven by phase 10 (k3smig_lib.infra.terraform). Inputs come from the tfvars file
# k3smig renders from the parameters; credentials only from the environment (SCW_ACCESS_KEY,
# SCW_SECRET_KEY, SCW_DEFAULT_PROJECT_ID). State stays local to this folder unless a backend is
# configured with -backend-config; it holds no private key (the key is generated outside Terraform).
provider "scaleway" {
  zone = var.zone
}

module "vm" {
  source = "../../modules/vm"

  name                 = var.name
  zone                 = var.zone
  project_id           = var.project_id
  instance_type        = var.instance_type
  image                = var.image
  disk_gb              = var.disk_gb
  root_volume_type     = var.root_volume_type
  admin_cidr           = var.admin_cidr
  ssh_user             = var.ssh_user
  ssh_public_key       = var.ssh_public_key
  ssh_private_key_path = var.ssh_private_key_path
  tags                 = var.tags
  server_count         = var.server_count
  agent_count          = var.agent_count
  private_network_cidr = var.private_network_cidr
  lb_enabled           = var.lb_enabled
  lb_type              = var.lb_type
}
