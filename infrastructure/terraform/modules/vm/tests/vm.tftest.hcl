# Plan-only tests with a mocked Scaleway provider: no credentials, no network, no cost.
# One passing run per behaviour and one expect_failures run per validation block.

mock_provider "scaleway" {}

variables {
  admin_cidr           = "203.0.113.0/24"
  ssh_public_key       = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKp0ExampleKeyOnlyForTests000000000000000 test@k3smig"
  ssh_private_key_path = "/home/operator/.ssh/k3smig_ed25519"
}

run "defaults_match_the_seed_vm" {
  command = plan

  assert {
    condition     = scaleway_instance_server.this.type == "GP1-XS"
    error_message = "The default instance type must be GP1-XS."
  }
  assert {
    condition     = scaleway_instance_server.this.image == "ubuntu_jammy"
    error_message = "The default image must be Ubuntu 22.04 (ubuntu_jammy)."
  }
  assert {
    condition     = scaleway_instance_server.this.root_volume[0].size_in_gb == 80
    error_message = "The default root volume must be 80 GB."
  }
  assert {
    condition     = scaleway_instance_server.this.zone == "fr-par-1"
    error_message = "The default zone must be fr-par-1."
  }
  assert {
    condition     = scaleway_instance_ip.this.type == "routed_ipv4"
    error_message = "The public IP must be a routed flexible IPv4."
  }
  assert {
    condition     = output.ssh_user == "root" && output.private_key_path == "/home/operator/.ssh/k3smig_ed25519"
    error_message = "The outputs must echo the SSH user and the private key path, never the key."
  }
}

run "security_group_drops_everything_but_the_four_ports" {
  command = plan

  assert {
    condition     = scaleway_instance_security_group.this.inbound_default_policy == "drop"
    error_message = "Inbound traffic not matched by a rule must be dropped."
  }
  assert {
    condition     = length(scaleway_instance_security_group.this.inbound_rule) == 4
    error_message = "Exactly four inbound rules are expected (22, 6443, 80, 443)."
  }
  assert {
    condition = alltrue([
      for r in scaleway_instance_security_group.this.inbound_rule :
      r.ip_range == "203.0.113.0/24" if contains([22, 6443], r.port)
    ])
    error_message = "SSH and the Kubernetes API must only be open to the admin CIDR."
  }
  assert {
    condition = alltrue([
      for r in scaleway_instance_security_group.this.inbound_rule :
      r.ip_range == "0.0.0.0/0" if contains([80, 443], r.port)
    ])
    error_message = "HTTP and HTTPS must be open to everyone."
  }
}

run "cloud_init_names_the_host_and_installs_python" {
  command = plan

  variables {
    name = "vm-under-test"
  }

  assert {
    condition     = startswith(scaleway_instance_server.this.user_data["cloud-init"], "#cloud-config\n")
    error_message = "cloud-init user data must start with the #cloud-config header."
  }
  assert {
    condition     = yamldecode(scaleway_instance_server.this.user_data["cloud-init"]).hostname == "vm-under-test"
    error_message = "cloud-init must set the hostname to the VM name."
  }
  assert {
    condition     = contains(yamldecode(scaleway_instance_server.this.user_data["cloud-init"]).packages, "python3-venv")
    error_message = "cloud-init must install python3-venv for the Helm role."
  }
  assert {
    condition     = scaleway_iam_ssh_key.this.name == "vm-under-test-operator"
    error_message = "The SSH key must be registered under the VM name."
  }
}

run "instance_type_and_disk_are_variables" {
  command = plan

  variables {
    instance_type = "DEV1-L"
    disk_gb       = 40
    tags          = ["team-a"]
  }

  assert {
    condition     = scaleway_instance_server.this.type == "DEV1-L" && scaleway_instance_server.this.root_volume[0].size_in_gb == 40
    error_message = "instance_type and disk_gb must reach the server."
  }
  assert {
    condition     = contains(scaleway_instance_server.this.tags, "team-a") && contains(scaleway_instance_server.this.tags, "k3smig")
    error_message = "Extra tags must be added to the module's own."
  }
}

run "rejects_invalid_name" {
  command = plan

  variables {
    name = "Bad_Name"
  }

  expect_failures = [var.name]
}

run "rejects_invalid_zone" {
  command = plan

  variables {
    zone = "us-east-1"
  }

  expect_failures = [var.zone]
}

run "rejects_invalid_project_id" {
  command = plan

  variables {
    project_id = "not-a-uuid"
  }

  expect_failures = [var.project_id]
}

run "rejects_invalid_instance_type" {
  command = plan

  variables {
    instance_type = "gp1-xs"
  }

  expect_failures = [var.instance_type]
}

run "rejects_invalid_image" {
  command = plan

  variables {
    image = "centos_stream_9"
  }

  expect_failures = [var.image]
}

run "rejects_invalid_disk_gb" {
  command = plan

  variables {
    disk_gb = 10
  }

  expect_failures = [var.disk_gb]
}

run "rejects_invalid_root_volume_type" {
  command = plan

  variables {
    root_volume_type = "b_ssd"
  }

  expect_failures = [var.root_volume_type]
}

run "rejects_invalid_admin_cidr" {
  command = plan

  variables {
    admin_cidr = "0.0.0.0/0"
  }

  expect_failures = [var.admin_cidr]
}

run "rejects_invalid_ssh_user" {
  command = plan

  variables {
    ssh_user = "Root User"
  }

  expect_failures = [var.ssh_user]
}

run "rejects_invalid_ssh_public_key" {
  command = plan

  variables {
    ssh_public_key = "-----BEGIN OPENSSH PRIVATE KEY-----"
  }

  expect_failures = [var.ssh_public_key]
}

run "rejects_invalid_ssh_private_key_path" {
  command = plan

  variables {
    ssh_private_key_path = " "
  }

  expect_failures = [var.ssh_private_key_path]
}
