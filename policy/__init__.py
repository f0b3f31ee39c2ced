"""cratecage's permission model: reading `[permissions.build|macro|run.<crate>]` policy, validating it,
and resolving what one crate may do (see ../shared/DESIGN.md, "Policy").

Nothing is enforced through this package yet: build scripts and proc macros still pass through, after the
wrapper has checked the toolchain. The policy issue fills it in.
"""
