"""Native confinement of what the host starts: Landlock, seccomp, namespaces, the reaper, link inputs."""
