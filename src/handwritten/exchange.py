"""nbgrader's filesystem exchange, with submissions that other students cannot read.

nbgrader's own submit leaves ``inbound/<student>+<lesson>+<time>+<random>/`` and its files world-readable and
relies on the folder's name (a timestamp and 12 random characters) staying secret: ``inbound/`` cannot be
listed. Here the submission is readable by its student and by the course's group only. ``inbound/`` is made by
the instructor's ``release_assignment`` with the set-group-id bit, so everything submitted into it belongs to
the instructor's group: ``collect``, which runs as the instructor, reads it through that group.
The class's hub selects it with ``c.ExchangeFactory.submit = "handwritten.exchange.PrivateSubmit"``.

``StickyRelease`` is nbgrader's release with ``inbound/`` sticky, as ``/tmp`` is: nbgrader makes it 2733, so anyone
who learns a submission folder's name can rename it, to their own name for instance, and ``collect`` then files
the work under them. Sticky, a folder can be renamed or deleted by its owner (and the instructor) only. Selected
with ``c.ExchangeFactory.release_assignment = "handwritten.exchange.StickyRelease"``.

``OwnedCollect`` is nbgrader's collect, filing each submission under the Unix user who owns its folder, not the
name the folder claims: anyone can create ``alice+<lesson>+<a later time>+x`` in ``inbound/``, and nbgrader's collect
takes it as alice's newest submission (it only warns that the owner differs). Selected with
``c.ExchangeFactory.collect = "handwritten.exchange.OwnedCollect"``.
"""

from __future__ import annotations

import os
import pwd
import stat

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.release_assignment import ExchangeReleaseAssignment
from nbgrader.exchange.default.submit import ExchangeSubmit


class StickyRelease(ExchangeReleaseAssignment):
    def init_dest(self):
        super().init_dest()  # makes the course's inbound/, outbound/ and feedback folders
        mode = os.stat(self.inbound_path).st_mode
        if not mode & stat.S_ISVTX:
            os.chmod(self.inbound_path, stat.S_IMODE(mode) | stat.S_ISVTX)


class PrivateSubmit(ExchangeSubmit):
    def copy_files(self):
        super().copy_files()
        inbound = os.stat(self.inbound_path)
        if not inbound.st_mode & stat.S_ISGID or inbound.st_gid == os.getgid():
            self.log.warning("%s is not set-group-id to the instructor's group: the submission stays readable by "
                             "everyone who knows its name", self.inbound_path)
            return
        dest = os.path.join(self.inbound_path, self.assignment_filename)
        # Folders only: they were made in the set-group-id inbound/, so they belong to the instructor's group
        # (files written after copying may not: the copy's chmod clears the bit). Others cannot enter them.
        for folder, _, _ in os.walk(dest):
            if os.stat(folder).st_gid == inbound.st_gid:
                # the top one group-writable, as nbgrader's (world-writable) one, so that the instructor can delete it
                os.chmod(folder, 0o770 if folder == dest else 0o750)


class OwnedCollect(ExchangeCollect):
    def _path_to_record(self, path):
        record = super()._path_to_record(path)
        try:
            owner = pwd.getpwuid(os.lstat(path).st_uid).pw_name
        except KeyError:
            owner = f"uid-{os.lstat(path).st_uid}"  # no such account: a student of its own, never a real one
        if owner != record["username"]:
            self.log.warning("%s claims to be %s's but belongs to %s: collected as %s's", path, record["username"],
                             owner, owner)
            record["username"] = owner
        return record

