# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How the modules behave in check mode: those that write, and those that only read.
    DOCUMENTATION = r"""
options: {}
"""

    WRITES = r"""
options: {}
attributes:
  check_mode:
    support: full
    description: Computes the change and validates it with a server-side dry run; writes nothing.
"""

    READS = r"""
options: {}
attributes:
  check_mode:
    support: full
    description: Reads only, in check mode as otherwise.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
"""
