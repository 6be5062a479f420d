################################################################################
# Instance
################################################################################

variable "name" {
  description = "Name of the VM and prefix of every resource the module creates (lowercase DNS label)."
  type        = string
  default     = "k3smig"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "var.name must be a lowercase DNS label of 3-40 characters (letters, digits, '-'), starting with a letter."
  }
}

variable "zone" {
  description = "Scaleway availability zone of the VM, its IP and its security group."
  type        = string
  default     = "fr-par-1"

  validation {
    condition     = contains(["fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "nl-ams-3", "pl-waw-1", "pl-waw-2", "pl-waw-3"], var.zone)
    error_message = "var.zone must be one of fr-par-1..3, nl-ams-1..3, pl-waw-1..3."
  }
}

variable "project_id" {
  description = "Scaleway project that owns the resources; null uses the provider default (SCW_DEFAULT_PROJECT_ID)."
  type        = string
  default     = null

  validation {
    condition     = var.project_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.project_id))
    error_message = "var.project_id must be null or a Scaleway project UUID."
  }
}

variable "instance_type" {
  description = "Commercial type of the instance (GP1-XS: 4 vCPU, 16 GiB; DEV1-L: 4 vCPU, 8 GiB). See the README for sizes."
  type        = string
  default     = "GP1-XS"

  validation {
    condition     = can(regex("^[A-Z0-9]+(-[A-Z0-9]+)+$", var.instance_type))
    error_message = "var.instance_type must be a Scaleway commercial type in upper case, such as GP1-XS or DEV1-L."
  }
}

variable "image" {
  description = "Marketplace image label of the VM; the Ansible roles are written for Ubuntu 22.04 (ubuntu_jammy)."
  type        = string
  default     = "ubuntu_jammy"

  validation {
    condition     = contains(["ubuntu_jammy", "ubuntu_noble", "debian_bookworm"], var.image)
    error_message = "var.image must be ubuntu_jammy, ubuntu_noble or debian_bookworm (the images the Ansible roles support)."
  }
}

variable "disk_gb" {
  description = "Size of the root volume in GB."
  type        = number
  default     = 80

  validation {
    condition     = var.disk_gb >= 20 && var.disk_gb <= 1000 && floor(var.disk_gb) == var.disk_gb
    error_message = "var.disk_gb must be a whole number of GB between 20 and 1000."
  }
}

variable "root_volume_type" {
  description = "Root volume type: sbs_volume (block storage) or l_ssd (local SSD, only on types that have one)."
  type        = string
  default     = "sbs_volume"

  validation {
    condition     = contains(["sbs_volume", "l_ssd"], var.root_volume_type)
    error_message = "var.root_volume_type must be sbs_volume or l_ssd."
  }
}

variable "tags" {
  description = "Tags added to every resource, besides the module's own (k3smig, the VM name)."
  type        = list(string)
  default     = []
}

################################################################################
# Access
################################################################################

variable "admin_cidr" {
  description = "IPv4 CIDR allowed to reach SSH (22) and the Kubernetes API (6443); never the whole Internet."
  type        = string

  validation {
    condition     = can(cidrhost(var.admin_cidr, 0)) && !startswith(var.admin_cidr, "0.0.0.0/") && !strcontains(var.admin_cidr, ":")
    error_message = "var.admin_cidr must be an IPv4 CIDR such as 203.0.113.0/24, and not 0.0.0.0/0."
  }
}

variable "ssh_user" {
  description = "User Ansible connects as; Scaleway images accept root with the registered key."
  type        = string
  default     = "root"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "var.ssh_user must be a POSIX user name (lowercase letters, digits, '_' or '-')."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key registered in the project; its private half is generated and kept by k3smig outside Terraform state."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256) [A-Za-z0-9+/=]+( .*)?$", trimspace(var.ssh_public_key)))
    error_message = "var.ssh_public_key must be one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256)."
  }
}

variable "ssh_private_key_path" {
  description = "Path of the private key on the operator's machine (mode 0600, outside git); only echoed into the outputs and inventory."
  type        = string

  validation {
    condition     = length(trimspace(var.ssh_private_key_path)) > 0
    error_message = "var.ssh_private_key_path must name the private key file."
  }
}

################################################################################
# Growing past one VM
################################################################################

variable "server_count" {
  description = "K3s servers: 1 keeps the single VM (SQLite datastore); 3 forms an HA control plane with embedded etcd."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 3], var.server_count)
    error_message = "var.server_count must be 1 (one VM) or 3 (embedded etcd needs an odd quorum; 2 is worse than 1)."
  }
}

variable "agent_count" {
  description = "K3s agents (workers) joined to the servers; they get the same instance type and disk as the servers."
  type        = number
  default     = 0

  validation {
    condition     = var.agent_count >= 0 && var.agent_count <= 10 && floor(var.agent_count) == var.agent_count
    error_message = "var.agent_count must be a whole number between 0 and 10."
  }
}

variable "private_network_cidr" {
  description = "IPv4 subnet of the private network between the nodes (created only with more than one node or a load balancer)."
  type        = string
  default     = "10.100.0.0/24"

  validation {
    # try(): a malformed value makes the expressions below fail, which must read as "invalid", not as an error.
    condition = try(
      !strcontains(var.private_network_cidr, ":")
      && tonumber(split("/", var.private_network_cidr)[1]) >= 16
      && tonumber(split("/", var.private_network_cidr)[1]) <= 26
      && cidrhost(var.private_network_cidr, 0) == split("/", var.private_network_cidr)[0]
      && anytrue([for r in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] : cidrhost(r, 0) == cidrhost("${cidrhost(var.private_network_cidr, 0)}/${split("/", r)[1]}", 0)])
      # K3s's own pod (10.42.0.0/16) and service (10.43.0.0/16) networks must not overlap the nodes' subnet.
      && !anytrue([for r in ["10.42.0.0/16", "10.43.0.0/16"] : cidrhost(r, 0) == cidrhost("${cidrhost(var.private_network_cidr, 0)}/16", 0)]),
      false
    )
    error_message = "var.private_network_cidr must be an RFC 1918 IPv4 subnet between /16 and /26 outside K3s's 10.42.0.0/16 and 10.43.0.0/16, such as 10.100.0.0/24."
  }
}

variable "lb_enabled" {
  description = "Put a Scaleway load balancer (TCP 80/443 to every node's ingress) in front of the cluster."
  type        = bool
  default     = false
}

variable "lb_type" {
  description = "Commercial type of the load balancer when lb_enabled is true."
  type        = string
  default     = "LB-S"

  validation {
    condition     = contains(["LB-S", "LB-GP-M", "LB-GP-L", "LB-GP-XL"], var.lb_type)
    error_message = "var.lb_type must be LB-S, LB-GP-M, LB-GP-L or LB-GP-XL."
  }
}
