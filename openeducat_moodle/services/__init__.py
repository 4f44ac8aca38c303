from . import grades
from . import push
