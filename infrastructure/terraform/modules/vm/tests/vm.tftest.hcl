# Plan-only tests with a mocked Scaleway provider: no credentials, no network, no cost.
# One passing run per behaviour and one expect_failures run per validation block.

mock_provider "scaleway" {
  # The provider checks that these IDs are (zoned or regional) UUIDs; the mock's random strings are not.
  mock_resource "scaleway_vpc_private_network" {
    defaults = {
      id = "fr-par/0b5e1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
    }
  }
  mock_resource "scaleway_lb_ip" {
    defaults = {
      id = "fr-par-1/1c6f2b3d-4e5f-4061-9b7c-8d9e0f1a2b3c"
    }
  }
  mock_resource "scaleway_lb" {
    defaults = {
      id = "fr-par-1/2d7a3c4e-5f60-4172-8c8d-9e0f1a2b3c4d"
    }
  }
  mock_resource "scaleway_lb_backend" {
    defaults = {
      id = "fr-par-1/3e8b4d5f-6071-4283-9d9e-0f1a2b3c4d5e"
    }
  }
}

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

run "one_server_keeps_the_single_vm_plan" {
  command = plan

  assert {
    condition = (
      length(scaleway_instance_server.node) == 0 && length(scaleway_instance_ip.node) == 0
      && length(scaleway_vpc.this) == 0 && length(scaleway_vpc_private_network.this) == 0
      && length(scaleway_ipam_ip.node) == 0 && length(scaleway_instance_private_nic.node) == 0
      && length(scaleway_lb.this) == 0 && length(scaleway_lb_backend.ingress) == 0
    )
    error_message = "server_count = 1 and agent_count = 0 must plan the single VM only: no extra node, private network or load balancer."
  }
  assert {
    condition     = keys(yamldecode(output.ansible_inventory).all.children) == ["k3s_servers"] && keys(yamldecode(output.ansible_inventory).all.children.k3s_servers.hosts) == ["k3smig"]
    error_message = "A single VM is the only host of group k3s_servers, as before."
  }
  assert {
    condition     = !contains(keys(yamldecode(output.ansible_inventory).all.children.k3s_servers.hosts.k3smig), "k3s_node_ip")
    error_message = "A single VM has no private address in its inventory entry."
  }
  assert {
    condition     = output.nodes["k3smig"].role == "server" && output.nodes["k3smig"].private_ip == null && output.lb_ip == null
    error_message = "The nodes output lists the single server without a private address; no load balancer address."
  }
}

run "three_servers_form_a_control_plane_on_a_private_network" {
  command = plan

  variables {
    server_count = 3
  }

  assert {
    condition     = toset(keys(scaleway_instance_server.node)) == toset(["k3smig-server-2", "k3smig-server-3"])
    error_message = "Three servers are the first VM plus k3smig-server-2 and k3smig-server-3."
  }
  assert {
    condition     = alltrue([for s in scaleway_instance_server.node : s.type == "GP1-XS" && s.security_group_id == scaleway_instance_security_group.this.id])
    error_message = "Every server has the instance type and the security group of the first."
  }
  assert {
    condition     = length(scaleway_vpc_private_network.this) == 1 && one(scaleway_vpc_private_network.this[0].ipv4_subnet).subnet == "10.100.0.0/24"
    error_message = "The nodes share one private network on private_network_cidr."
  }
  assert {
    condition     = [for n in ["k3smig", "k3smig-server-2", "k3smig-server-3"] : scaleway_ipam_ip.node[n].address] == ["10.100.0.10", "10.100.0.11", "10.100.0.12"]
    error_message = "Each node reserves a fixed private address, first server first."
  }
  assert {
    condition     = length(scaleway_instance_private_nic.node) == 3
    error_message = "Each of the three servers has a NIC on the private network."
  }
  assert {
    condition = alltrue([
      for r in scaleway_instance_security_group.this.inbound_rule :
      r.ip_range == "10.100.0.0/24" if contains(["6443-6443", "2379-2380", "10250-10250", "8472-8472"], coalesce(r.port_range, "none"))
    ]) && length([for r in scaleway_instance_security_group.this.inbound_rule : r if r.ip_range == "10.100.0.0/24"]) == 4
    error_message = "The K3s ports (API/supervisor, etcd, kubelet, flannel VXLAN) are open to the private network only."
  }
  assert {
    condition     = length([for r in scaleway_instance_security_group.this.inbound_rule : r if r.ip_range == "0.0.0.0/0"]) == 2
    error_message = "Only HTTP and HTTPS stay open to the Internet."
  }
  assert {
    condition     = keys(yamldecode(output.ansible_inventory).all.children) == ["k3s_servers"] && yamldecode(output.ansible_inventory).all.children.k3s_servers.hosts["k3smig-server-3"].k3s_node_ip == "10.100.0.12"
    error_message = "The inventory lists the three servers with their private address as k3s_node_ip."
  }
}

run "one_server_and_two_agents" {
  command = plan

  variables {
    agent_count = 2
  }

  assert {
    condition     = toset(keys(scaleway_instance_server.node)) == toset(["k3smig-agent-1", "k3smig-agent-2"])
    error_message = "Two agents join the single server."
  }
  assert {
    condition     = contains(scaleway_instance_server.node["k3smig-agent-1"].tags, "k3s-agent")
    error_message = "Agents are tagged k3s-agent."
  }
  assert {
    condition     = keys(yamldecode(output.ansible_inventory).all.children.k3s_agents.hosts) == ["k3smig-agent-1", "k3smig-agent-2"]
    error_message = "The agents are in group k3s_agents."
  }
  assert {
    condition     = output.nodes["k3smig-agent-2"].private_ip == "10.100.0.12" && output.nodes["k3smig-agent-2"].role == "agent"
    error_message = "Agents get the private addresses after the servers'."
  }
}

run "three_servers_and_two_agents" {
  command = plan

  variables {
    server_count = 3
    agent_count  = 2
  }

  assert {
    condition     = length(scaleway_instance_server.node) == 4 && length(scaleway_instance_private_nic.node) == 5 && length(scaleway_instance_ip.node) == 4
    error_message = "Three servers and two agents are five nodes, each with a public IP and a private NIC."
  }
  assert {
    condition     = output.nodes["k3smig-agent-1"].private_ip == "10.100.0.13" && length(output.nodes) == 5
    error_message = "Agents are addressed after the three servers."
  }
  assert {
    condition = (
      length(yamldecode(output.ansible_inventory).all.children.k3s_servers.hosts) == 3
      && length(yamldecode(output.ansible_inventory).all.children.k3s_agents.hosts) == 2
    )
    error_message = "The inventory has three servers and two agents."
  }
}

run "load_balancer_forwards_80_and_443_to_every_node" {
  command = plan

  variables {
    server_count = 3
    lb_enabled   = true
  }

  assert {
    condition     = length(scaleway_lb.this) == 1 && scaleway_lb.this[0].type == "LB-S"
    error_message = "lb_enabled creates one load balancer of lb_type."
  }
  assert {
    condition     = toset([for f in scaleway_lb_frontend.ingress : f.inbound_port]) == toset([80, 443])
    error_message = "The load balancer listens on 80 and 443."
  }
  assert {
    condition = alltrue([
      for b in scaleway_lb_backend.ingress :
      b.forward_protocol == "tcp" && toset(b.server_ips) == toset(["10.100.0.10", "10.100.0.11", "10.100.0.12"])
    ])
    error_message = "Both backends pass TCP through to every node's private address."
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

run "rejects_invalid_server_count" {
  command = plan

  variables {
    server_count = 2
  }

  expect_failures = [var.server_count]
}

run "rejects_invalid_agent_count" {
  command = plan

  variables {
    agent_count = 11
  }

  expect_failures = [var.agent_count]
}

run "rejects_invalid_private_network_cidr" {
  command = plan

  variables {
    private_network_cidr = "10.42.0.0/24"
  }

  expect_failures = [var.private_network_cidr]
}

run "rejects_invalid_lb_type" {
  command = plan

  variables {
    lb_type = "LB-XS"
  }

  expect_failures = [var.lb_type]
}

run "rejects_invalid_ssh_private_key_path" {
  command = plan

  variables {
    ssh_private_key_path = " "
  }

  expect_failures = [var.ssh_private_key_path]
}
