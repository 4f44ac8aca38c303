from . import grades
from . import push
from . import attendance
